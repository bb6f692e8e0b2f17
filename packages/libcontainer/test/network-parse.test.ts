import { describe, expect, it } from 'vitest';
import {
  formatPublish,
  hostsFile,
  parseExpose,
  parseNetworkMode,
  parsePublish,
  resolvConf,
} from '../src/network/index.js';
import { parseSubnet } from '../src/network/ipv4.js';

describe('network arguments', () => {
  it('parses -p like Docker', () => {
    expect(parsePublish('127.0.0.1:18080:80/tcp')).toEqual({
      hostIp: '127.0.0.1',
      hostPort: 18080,
      containerPort: 80,
      protocol: 'tcp',
    });
    expect(parsePublish('8080:80')).toEqual({ hostPort: 8080, containerPort: 80, protocol: 'tcp' });
    expect(parsePublish('0.0.0.0:53:53/udp')).toEqual({ hostPort: 53, containerPort: 53, protocol: 'udp' });
    expect(formatPublish(parsePublish('10.0.0.1:1:2/udp'))).toBe('10.0.0.1:1:2/udp');
  });

  it.each([
    ['80', 'expected [HOSTIP:]HOSTPORT:CONTAINERPORT'],
    ['x:80', 'host port "x" is not a port'],
    ['80:70000', 'container port "70000" is not a port'],
    ['80:80/sctp', 'protocol "sctp" is not tcp or udp'],
    ['1.2.3:80:80', 'host address "1.2.3" is not an IPv4 address'],
  ])('names the bad part of %s', (input, msg) => {
    expect(() => parsePublish(input)).toThrow(`invalid port mapping "${input}": ${msg}`);
  });

  it('parses expose, modes and subnets', () => {
    expect(parseExpose('53/udp')).toEqual({ port: 53, protocol: 'udp' });
    expect(parseNetworkMode('container:abc')).toBe('container:abc');
    expect(() => parseNetworkMode('bridged')).toThrow('invalid network mode "bridged"');
    expect(parseSubnet('172.29.0.0/16').size).toBe(65536);
    expect(() => parseSubnet('172.29.0.1/16')).toThrow('host bits are set (did you mean 172.29.0.0/16?)');
  });

  it('writes hosts and resolv.conf', () => {
    const h = hostsFile({
      ip: '172.29.0.2',
      hostname: 'web',
      id: 'c1',
      links: [{ alias: 'db', id: 'c0', ip: '172.29.0.3' }],
    });
    expect(h).toContain('172.29.0.3\tdb c0\n');
    expect(h).toContain('172.29.0.2\tweb c1\n');
    expect(resolvConf({ dns: ['1.1.1.1'], search: ['example.org'] })).toBe(
      'nameserver 1.1.1.1\nsearch example.org\n',
    );
  });
});
