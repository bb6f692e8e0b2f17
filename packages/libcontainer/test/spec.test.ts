import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  containerStateSchema,
  defaultSpec,
  formatPath,
  loadConfig,
  parseConfig,
  parseState,
} from '../src/spec/index.js';

// biome-ignore lint/suspicious/noExplicitAny: tests mutate configs freely
type Loose = any;

/** A fresh, valid, untyped config to break. */
function base(): Loose {
  return JSON.parse(JSON.stringify(defaultSpec()));
}

function catchError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const tmpRoot = mkdtempSync(join(tmpdir(), 'nsinit-spec-test-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));
let bundleCount = 0;
function bundle(configText?: string): string {
  const dir = join(tmpRoot, `bundle-${bundleCount++}`);
  mkdirSync(dir);
  if (configText !== undefined) writeFileSync(join(dir, 'config.json'), configText);
  return dir;
}

describe('parseConfig: invalid configs', () => {
  const cases: { name: string; mutate: (c: Loose) => unknown; path: string; message: string }[] = [
    {
      name: 'unknown namespace type',
      mutate: (c) => {
        c.linux.namespaces[2].type = 'foo';
      },
      path: 'linux.namespaces[2].type',
      message:
        'config.json: linux.namespaces[2].type: invalid value "foo" (expected one of pid, network, mount, ipc, uts, user, cgroup, time)',
    },
    {
      name: 'uid as a string',
      mutate: (c) => {
        c.process.user.uid = '0';
      },
      path: 'process.user.uid',
      message: 'config.json: process.user.uid: expected integer, got string',
    },
    {
      name: 'negative uid',
      mutate: (c) => {
        c.process.user.uid = -1;
      },
      path: 'process.user.uid',
      message: 'config.json: process.user.uid: must be >= 0, got -1',
    },
    {
      name: 'uid beyond uint32',
      mutate: (c) => {
        c.process.user.gid = 2 ** 32;
      },
      path: 'process.user.gid',
      message: 'config.json: process.user.gid: must be <= 4294967295, got 4294967296',
    },
    {
      name: 'missing process.user',
      mutate: (c) => {
        delete c.process.user;
      },
      path: 'process.user',
      message: 'config.json: process.user: required',
    },
    {
      name: 'missing root',
      mutate: (c) => {
        delete c.root;
      },
      path: 'root',
      message: 'config.json: root: required',
    },
    {
      name: 'missing root.path',
      mutate: (c) => {
        delete c.root.path;
      },
      path: 'root.path',
      message: 'config.json: root.path: required',
    },
    {
      name: 'empty root.path',
      mutate: (c) => {
        c.root.path = '';
      },
      path: 'root.path',
      message: 'config.json: root.path: must not be empty',
    },
    {
      name: 'relative cwd',
      mutate: (c) => {
        c.process.cwd = 'home/user';
      },
      path: 'process.cwd',
      message: 'config.json: process.cwd: must be an absolute path, got "home/user"',
    },
    {
      name: 'missing cwd',
      mutate: (c) => {
        delete c.process.cwd;
      },
      path: 'process.cwd',
      message: 'config.json: process.cwd: required',
    },
    {
      name: 'duplicate namespace',
      mutate: (c) => {
        c.linux.namespaces.push({ type: 'ipc', path: '/proc/1/ns/ipc' });
      },
      path: 'linux.namespaces[6].type',
      message:
        'config.json: linux.namespaces[6].type: duplicate namespace type "ipc" (also at linux.namespaces[2])',
    },
    {
      name: 'relative namespace path',
      mutate: (c) => {
        c.linux.namespaces[1].path = 'proc/1/ns/net';
      },
      path: 'linux.namespaces[1].path',
      message: 'config.json: linux.namespaces[1].path: must be an absolute path, got "proc/1/ns/net"',
    },
    {
      name: 'non-integer device major',
      mutate: (c) => {
        c.linux.devices = [{ path: '/dev/fuse', type: 'c', major: 10.5, minor: 229 }];
      },
      path: 'linux.devices[0].major',
      message: 'config.json: linux.devices[0].major: expected integer, got 10.5',
    },
    {
      name: 'device without minor',
      mutate: (c) => {
        c.linux.devices = [{ path: '/dev/fuse', type: 'c', major: 10 }];
      },
      path: 'linux.devices[0].minor',
      message: 'config.json: linux.devices[0].minor: required for device type "c"',
    },
    {
      name: 'hook timeout 0',
      mutate: (c) => {
        c.hooks = { poststop: [{ path: '/usr/bin/cleanup', timeout: 0 }] };
      },
      path: 'hooks.poststop[0].timeout',
      message: 'config.json: hooks.poststop[0].timeout: must be >= 1, got 0',
    },
    {
      name: 'hook timeout "5"',
      mutate: (c) => {
        c.hooks = { createRuntime: [{ path: '/usr/bin/setup', timeout: '5' }] };
      },
      path: 'hooks.createRuntime[0].timeout',
      message: 'config.json: hooks.createRuntime[0].timeout: expected integer, got string',
    },
    {
      name: 'hooks not an object',
      mutate: (c) => {
        c.hooks = [{ path: '/usr/bin/setup' }];
      },
      path: 'hooks',
      message: 'config.json: hooks: expected object, got array',
    },
    {
      name: 'hook list not an array',
      mutate: (c) => {
        c.hooks = { prestart: { path: '/usr/bin/setup' } };
      },
      path: 'hooks.prestart',
      message: 'config.json: hooks.prestart: expected array, got object',
    },
    {
      name: 'relative hook path',
      mutate: (c) => {
        c.hooks = { poststart: [{ path: 'notify' }] };
      },
      path: 'hooks.poststart[0].path',
      message: 'config.json: hooks.poststart[0].path: must be an absolute path, got "notify"',
    },
    {
      name: 'relative mount destination',
      mutate: (c) => {
        c.mounts[3].destination = 'dev/shm';
      },
      path: 'mounts[3].destination',
      message: 'config.json: mounts[3].destination: must be an absolute path, got "dev/shm"',
    },
    {
      name: 'missing process',
      mutate: (c) => {
        delete c.process;
      },
      path: 'process',
      message: 'config.json: process: required',
    },
    {
      name: 'empty process.args',
      mutate: (c) => {
        c.process.args = [];
      },
      path: 'process.args',
      message: 'config.json: process.args: must contain at least one argument',
    },
    {
      name: 'bad capability name',
      mutate: (c) => {
        c.process.capabilities.effective[1] = 'kill';
      },
      path: 'process.capabilities.effective[1]',
      message:
        'config.json: process.capabilities.effective[1]: invalid value "kill" (expected a capability name such as CAP_KILL)',
    },
    {
      name: 'bad rlimit type',
      mutate: (c) => {
        c.process.rlimits[0].type = 'NOFILE';
      },
      path: 'process.rlimits[0].type',
      message:
        'config.json: process.rlimits[0].type: invalid value "NOFILE" (expected a resource name such as RLIMIT_NOFILE)',
    },
    {
      name: 'bad ociVersion',
      mutate: (c) => {
        c.ociVersion = 'v1';
      },
      path: 'ociVersion',
      message: 'config.json: ociVersion: invalid value "v1" (expected a semantic version such as 1.2.0)',
    },
    {
      name: 'memory limit below -1',
      mutate: (c) => {
        c.linux.resources.memory = { limit: -2 };
      },
      path: 'linux.resources.memory.limit',
      message: 'config.json: linux.resources.memory.limit: must be >= -1, got -2',
    },
    {
      name: 'non-string annotation value',
      mutate: (c) => {
        c.annotations = { 'com.example.gpus': 2 };
      },
      path: 'annotations["com.example.gpus"]',
      message: 'config.json: annotations["com.example.gpus"]: expected string, got number',
    },
    {
      name: 'unknown seccomp action',
      mutate: (c) => {
        c.linux.seccomp = {
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [{ names: ['mount'], action: 'DENY' }],
        };
      },
      path: 'linux.seccomp.syscalls[0].action',
      message:
        'config.json: linux.seccomp.syscalls[0].action: invalid value "DENY" (expected one of SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG, SCMP_ACT_NOTIFY)',
    },
    {
      name: 'wrong type of a boolean',
      mutate: (c) => {
        c.root.readonly = 'true';
      },
      path: 'root.readonly',
      message: 'config.json: root.readonly: expected boolean, got string',
    },
    {
      name: 'null section',
      mutate: (c) => {
        c.linux = null;
      },
      path: 'linux',
      message: 'config.json: linux: expected object, got null',
    },
    {
      name: 'top level not an object',
      mutate: () => ['not', 'a', 'config'],
      path: '',
      message: 'config.json: expected object, got array',
    },
  ];

  it.each(cases)('$name', ({ mutate, path, message }) => {
    const config = base();
    const replaced = mutate(config);
    const err = catchError(() => parseConfig(replaced ?? config));
    expect(err.message).toBe(message);
    expect(err.message).not.toContain('\n');
    expect(err.issues[0]?.path).toBe(path);
    expect(err.code).toBe('InvalidConfig');
    expect(err.source).toBe('config.json');
  });

  it('reports every issue, the first in the message', () => {
    const config = base();
    config.process.user.uid = 'root';
    delete config.root;
    config.linux.namespaces[0].type = 'net';
    const err = catchError(() => parseConfig(config));
    expect(err.message).toBe('config.json: process.user.uid: expected integer, got string');
    expect(err.issues).toEqual([
      { path: 'process.user.uid', message: 'expected integer, got string' },
      { path: 'root', message: 'required' },
      {
        path: 'linux.namespaces[0].type',
        message: 'invalid value "net" (expected one of pid, network, mount, ipc, uts, user, cgroup, time)',
      },
    ]);
  });

  it('prefixes messages with opts.source', () => {
    const err = catchError(() => parseConfig({ ociVersion: '1.2.0' }, { source: '/b/config.json' }));
    expect(err.message).toBe('/b/config.json: root: required');
    expect(err.source).toBe('/b/config.json');
  });

  it('is an Error named ConfigError', () => {
    const err = catchError(() => parseConfig(null));
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ConfigError');
    expect(err.message).toBe('config.json: expected object, got null');
  });
});

describe('parseConfig: valid configs', () => {
  it('accepts a minimal config', () => {
    const minimal = {
      ociVersion: '1.0.2-dev',
      root: { path: '/srv/rootfs' },
      process: { user: { uid: 0, gid: 0 }, args: ['true'], cwd: '/' },
    };
    expect(parseConfig(minimal)).toStrictEqual(minimal);
  });

  it('keeps unknown (extension) keys at every level', () => {
    const config = base();
    config['org.example.extension'] = { enabled: true };
    config.windows = { layerFolders: ['C:\\layers'] };
    config.process.futureField = [1, 2, 3];
    config.linux.resources.devices[0].comment = 'deny all';
    const parsed = parseConfig(config) as Loose;
    expect(parsed['org.example.extension']).toEqual({ enabled: true });
    expect(parsed.windows).toEqual({ layerFolders: ['C:\\layers'] });
    expect(parsed.process.futureField).toEqual([1, 2, 3]);
    expect(parsed.linux.resources.devices[0].comment).toBe('deny all');
  });

  it('accepts a memory limit of -1 (unlimited)', () => {
    const config = base();
    config.linux.resources.memory = { limit: -1, swap: -1, reservation: 0, swappiness: 60 };
    expect(parseConfig(config).linux?.resources?.memory).toEqual({
      limit: -1,
      swap: -1,
      reservation: 0,
      swappiness: 60,
    });
  });

  it('accepts empty mounts', () => {
    const config = base();
    config.mounts = [];
    expect(parseConfig(config).mounts).toEqual([]);
  });

  it('accepts RLIM_INFINITY (2^64-1, rounded by JSON.parse) as an rlimit', () => {
    const text = JSON.stringify(base()).replace('"hard":1024', '"hard":18446744073709551615');
    expect(parseConfig(JSON.parse(text)).process?.rlimits?.[0]?.hard).toBe(2 ** 64);
  });

  it('accepts an empty namespace path (same as none) and absolute ones', () => {
    const config = base();
    config.linux.namespaces[0].path = '';
    config.linux.namespaces[1].path = '/var/run/netns/test';
    expect(parseConfig(config).linux?.namespaces?.slice(0, 2)).toEqual([
      { type: 'pid', path: '' },
      { type: 'network', path: '/var/run/netns/test' },
    ]);
  });

  it('accepts the full set of hooks, seccomp, devices and resources', () => {
    const config = base();
    config.hooks = {
      createRuntime: [{ path: '/usr/bin/setup', args: ['setup', '--fast'], env: ['A=1'], timeout: 5 }],
      poststop: [{ path: '/usr/bin/cleanup' }],
    };
    config.linux.devices = [
      { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 438, uid: 0, gid: 0 },
      { path: '/dev/fifo', type: 'p' },
    ];
    config.linux.seccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
      flags: ['SECCOMP_FILTER_FLAG_LOG'],
      syscalls: [
        { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
        {
          names: ['personality'],
          action: 'SCMP_ACT_ALLOW',
          args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }],
        },
      ],
    };
    config.linux.resources = {
      ...config.linux.resources,
      cpu: { shares: 1024, quota: -1, period: 100000, cpus: '0-3' },
      pids: { limit: 100 },
      blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }] },
      hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
      unified: { 'memory.high': '1G' },
    };
    config.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    config.linux.sysctl = { 'net.ipv4.ip_forward': '1' };
    config.linux.rootfsPropagation = 'rslave';
    config.linux.timeOffsets = { monotonic: { secs: -10, nanosecs: 0 } };
    config.process.scheduler = { policy: 'SCHED_OTHER', nice: -5 };
    config.process.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 4 };
    config.process.oomScoreAdj = -500;
    config.annotations = { 'org.opencontainers.image.os': 'linux' };
    config.domainname = 'example.org';
    expect(parseConfig(config)).toStrictEqual(config);
  });

  it('does not require process with requireProcess: false', () => {
    const config = base();
    delete config.process;
    expect(parseConfig(config, { requireProcess: false }).process).toBeUndefined();
    config.process = { user: { uid: 0, gid: 0 }, cwd: '/' };
    expect(parseConfig(config, { requireProcess: false }).process).toEqual({
      user: { uid: 0, gid: 0 },
      cwd: '/',
    });
  });

  it('does not modify its input', () => {
    const config = base();
    const before = JSON.stringify(config);
    parseConfig(config);
    expect(JSON.stringify(config)).toBe(before);
  });
});

describe('loadConfig', () => {
  it('reads <bundle>/config.json', () => {
    const dir = bundle(JSON.stringify(defaultSpec(), null, 2));
    expect(loadConfig(dir)).toStrictEqual(defaultSpec());
  });

  it('accepts a leading byte order mark', () => {
    const dir = bundle(`\uFEFF${JSON.stringify(defaultSpec())}`);
    expect(loadConfig(dir).hostname).toBe('nsinit');
  });

  it('reports invalid JSON with the file path and position', () => {
    const dir = bundle('{\n  "ociVersion": "1.2.0",\n  "root": {"path": "rootfs",}\n}\n');
    const file = join(dir, 'config.json');
    const err = catchError(() => loadConfig(dir));
    expect(err.message).toBe(
      `${file}: invalid JSON at line 3, column 29 (offset 55): expected a property name in double quotes, got '}'`,
    );
    expect(err.source).toBe(file);
    expect(err.issues).toEqual([
      {
        path: '',
        message:
          "invalid JSON at line 3, column 29 (offset 55): expected a property name in double quotes, got '}'",
      },
    ]);
  });

  it('reports truncated JSON and an unterminated string where it starts', () => {
    const dir = bundle('{"ociVersion": "1.2.0", "root": {"path": "rootfs');
    const err = catchError(() => loadConfig(dir));
    expect(err.message).toBe(
      `${join(dir, 'config.json')}: invalid JSON at line 1, column 42 (offset 41): unterminated string`,
    );
  });

  it('reports an empty file', () => {
    const dir = bundle('');
    const err = catchError(() => loadConfig(dir));
    expect(err.message).toBe(
      `${join(dir, 'config.json')}: invalid JSON at line 1, column 1 (offset 0): unexpected end of input, expected a value`,
    );
  });

  it('reports a missing config.json with its path', () => {
    const dir = bundle();
    const err = catchError(() => loadConfig(dir));
    expect(err.message).toBe(
      `${join(dir, 'config.json')}: cannot read file: no such file or directory (ENOENT)`,
    );
    expect(err.issues).toEqual([
      { path: '', message: 'cannot read file: no such file or directory (ENOENT)' },
    ]);
    expect(err.code).toBe('InvalidConfig');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('reports a config.json that is a directory', () => {
    const dir = bundle();
    mkdirSync(join(dir, 'config.json'));
    const err = catchError(() => loadConfig(dir));
    expect(err.message).toBe(`${join(dir, 'config.json')}: cannot read file: is a directory (EISDIR)`);
  });

  it.skipIf(process.geteuid?.() === 0)('reports an unreadable config.json', () => {
    const dir = bundle('{}');
    chmodSync(join(dir, 'config.json'), 0o000);
    const err = catchError(() => loadConfig(dir));
    expect(err.message).toBe(`${join(dir, 'config.json')}: cannot read file: permission denied (EACCES)`);
  });

  it('prefixes validation errors with the file path', () => {
    const config = base();
    config.process.user.uid = '1000';
    const dir = bundle(JSON.stringify(config));
    const err = catchError(() => loadConfig(dir));
    expect(err.message).toBe(`${join(dir, 'config.json')}: process.user.uid: expected integer, got string`);
  });

  it('passes requireProcess through', () => {
    const config = base();
    delete config.process;
    const dir = bundle(JSON.stringify(config));
    expect(() => loadConfig(dir)).toThrow(/: process: required$/);
    expect(loadConfig(dir, { requireProcess: false }).process).toBeUndefined();
  });
});

describe('container state', () => {
  const state = { ociVersion: '1.2.0', id: 'web', status: 'running', pid: 4242, bundle: '/srv/bundles/web' };

  it('parses a valid state and keeps extra keys', () => {
    expect(parseState(state)).toStrictEqual(state);
    const extra = { ...state, annotations: { a: 'b' }, rootfs: '/srv/bundles/web/rootfs' };
    expect(parseState(extra)).toStrictEqual(extra);
    expect(containerStateSchema.safeParse({ ...state, status: 'paused' }).success).toBe(true);
  });

  it('rejects an unknown status and a bad pid', () => {
    expect(() => parseState({ ...state, status: 'exited' })).toThrow(
      'state.json: status: invalid value "exited" (expected one of creating, created, running, stopped, paused)',
    );
    expect(() => parseState({ ...state, pid: '4242' }, '/run/nsinit/web/state.json')).toThrow(
      '/run/nsinit/web/state.json: pid: expected integer, got string',
    );
  });
});

describe('formatPath', () => {
  it('prints dots, [index] and quotes keys that are not identifiers', () => {
    expect(formatPath([])).toBe('');
    expect(formatPath(['linux', 'namespaces', 2, 'type'])).toBe('linux.namespaces[2].type');
    expect(formatPath([0, 'a'])).toBe('[0].a');
    expect(formatPath(['linux', 'sysctl', 'net.ipv4.ip_forward'])).toBe(
      'linux.sysctl["net.ipv4.ip_forward"]',
    );
  });
});
