// The kind table and the join order (pure: no kernel, no root).
import { CLONE } from '@tsc/syscall';
import { describe, expect, it } from 'vitest';
import {
  cloneFlags,
  isNamespaceType,
  joinOrder,
  kindOfFile,
  kindOfFlag,
  NAMESPACE_TYPES,
  NAMESPACES,
  NS_FILES,
  namespaceKind,
  parseNamespaceLink,
} from '../src/index.js';

describe('namespace kinds', () => {
  it('maps every OCI type to its /proc/<pid>/ns file and CLONE_NEW* flag', () => {
    const table = Object.fromEntries(NAMESPACES.map((k) => [k.type, [k.file, k.flag]]));
    expect(table).toEqual({
      mount: ['mnt', CLONE.NEWNS],
      uts: ['uts', CLONE.NEWUTS],
      ipc: ['ipc', CLONE.NEWIPC],
      pid: ['pid', CLONE.NEWPID],
      network: ['net', CLONE.NEWNET],
      user: ['user', CLONE.NEWUSER],
      cgroup: ['cgroup', CLONE.NEWCGROUP],
      time: ['time', CLONE.NEWTIME],
    });
    expect(NAMESPACE_TYPES).toHaveLength(8);
    // Eight distinct single-bit flags.
    expect(new Set(NAMESPACES.map((k) => k.flag)).size).toBe(8);
    for (const k of NAMESPACES) expect(k.flag & (k.flag - 1)).toBe(0);
  });

  it('looks kinds up by OCI name, file name and flag', () => {
    expect(NS_FILES.network.file).toBe('net');
    expect(namespaceKind('mount')?.flag).toBe(CLONE.NEWNS);
    expect(namespaceKind('net')).toBeUndefined(); // a file name is not an OCI type
    expect(namespaceKind('toString')).toBeUndefined(); // no prototype keys
    expect(isNamespaceType('uts')).toBe(true);
    expect(isNamespaceType('constructor')).toBe(false);
    expect(kindOfFile('mnt')?.type).toBe('mount');
    expect(kindOfFile('mount')).toBeUndefined();
    expect(kindOfFlag(CLONE.NEWTIME)?.type).toBe('time');
    expect(kindOfFlag(CLONE.NEWNET | CLONE.NEWUTS)).toBeUndefined();
    expect(cloneFlags(['network', 'uts'])).toBe(CLONE.NEWNET | CLONE.NEWUTS);
    expect(() => cloneFlags(['net'])).toThrow('unknown namespace type "net"');
  });

  it('orders joins user first and mount last, keeping the rest and dropping unknown names', () => {
    expect(joinOrder(['mount', 'pid', 'network', 'user', 'uts'])).toEqual([
      'user',
      'pid',
      'network',
      'uts',
      'mount',
    ]);
    expect(joinOrder(['time', 'bogus', 'mount', 'cgroup', 'user'])).toEqual([
      'user',
      'time',
      'cgroup',
      'mount',
    ]);
    expect(joinOrder([])).toEqual([]);
  });

  it('parses namespace links', () => {
    expect(parseNamespaceLink('net:[4026531840]')).toEqual({ type: 'network', inode: 4026531840 });
    expect(parseNamespaceLink('mnt:[4026531841]')).toEqual({ type: 'mount', inode: 4026531841 });
    expect(parseNamespaceLink('socket:[123]')).toBeUndefined();
    expect(parseNamespaceLink('/etc/passwd')).toBeUndefined();
  });
});
