import { ContainerError } from '../errors.js';
import type { ExposedPort, PortMapping, PortProtocol } from './types.js';

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function port(s: string, what: string, input: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
    throw new ContainerError(
      'InvalidArgument',
      `invalid port mapping "${input}": ${what} "${s}" is not a port (1-65535)`,
    );
  }
  return Number(s);
}

/**
 * Parse Docker's `-p` syntax: `HOSTPORT:CONTAINERPORT[/tcp|udp]` or
 * `HOSTIP:HOSTPORT:CONTAINERPORT[/tcp|udp]` (IPv4 host addresses; `0.0.0.0` means every address).
 *
 * @example parsePublish('127.0.0.1:18080:80/tcp') // { hostIp: '127.0.0.1', hostPort: 18080, containerPort: 80, protocol: 'tcp' }
 */
export function parsePublish(input: string): PortMapping {
  let spec = input.trim();
  let protocol: PortProtocol = 'tcp';
  const slash = spec.lastIndexOf('/');
  if (slash >= 0) {
    const p = spec.slice(slash + 1).toLowerCase();
    if (p !== 'tcp' && p !== 'udp') {
      throw new ContainerError(
        'InvalidArgument',
        `invalid port mapping "${input}": protocol "${p}" is not tcp or udp`,
      );
    }
    protocol = p;
    spec = spec.slice(0, slash);
  }
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new ContainerError(
      'InvalidArgument',
      `invalid port mapping "${input}": expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`,
    );
  }
  const m: PortMapping = {
    hostPort: port(parts[parts.length - 2] as string, 'host port', input),
    containerPort: port(parts[parts.length - 1] as string, 'container port', input),
    protocol,
  };
  if (parts.length === 3) {
    const ip = parts[0] as string;
    if (!V4.test(ip)) {
      throw new ContainerError(
        'InvalidArgument',
        `invalid port mapping "${input}": host address "${ip}" is not an IPv4 address`,
      );
    }
    if (ip !== '0.0.0.0') m.hostIp = ip;
  }
  return m;
}

/** Parse `80`, `80/tcp`, `53/udp` (Docker's EXPOSE). */
export function parseExpose(input: string): ExposedPort {
  const [p, proto = 'tcp'] = input.trim().split('/');
  if (proto !== 'tcp' && proto !== 'udp') {
    throw new ContainerError(
      'InvalidArgument',
      `invalid exposed port "${input}": protocol "${proto}" is not tcp or udp`,
    );
  }
  if (!/^\d{1,5}$/.test(p ?? '') || Number(p) < 1 || Number(p) > 65535) {
    throw new ContainerError(
      'InvalidArgument',
      `invalid exposed port "${input}": "${p}" is not a port (1-65535)`,
    );
  }
  return { port: Number(p), protocol: proto };
}

/** `127.0.0.1:18080:80/tcp`, the inverse of {@link parsePublish}. */
export function formatPublish(m: PortMapping): string {
  return `${m.hostIp ? `${m.hostIp}:` : ''}${m.hostPort}:${m.containerPort}/${m.protocol}`;
}

/** Throw when two mappings claim the same host address, port and protocol. */
export function checkPublishConflicts(ms: readonly PortMapping[]): void {
  for (let i = 0; i < ms.length; i++) {
    for (let j = i + 1; j < ms.length; j++) {
      const a = ms[i] as PortMapping;
      const b = ms[j] as PortMapping;
      if (
        a.hostPort === b.hostPort &&
        a.protocol === b.protocol &&
        (!a.hostIp || !b.hostIp || a.hostIp === b.hostIp)
      ) {
        throw new ContainerError(
          'InvalidArgument',
          `port mappings "${formatPublish(a)}" and "${formatPublish(b)}" use the same host port`,
        );
      }
    }
  }
}
