// Security settings of a container's processes on the real kernel: linux.seccomp (a custom
// profile, Docker's default one, with and without no_new_privs, for a non-root user, in exec,
// invalid profiles), linux.sysctl (only namespaced keys, each in a namespace that is not the
// host's), AppArmor and SELinux on a host that has neither, process.ioPriority, process.scheduler
// and linux.personality.
//
// Each seccomp case is paired with a control run of the same config without the filter, so that
// an errno seen with the filter cannot come from missing capabilities or a failing syscall. The
// syscalls are made by a tiny static C program (busybox has no keyctl, and its applets only print
// strerror), bind-mounted read-only at /home.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DOCKER_DEFAULT_CAPABILITIES } from '@tsc/seccomp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container, defaultSeccompProfile, type Process } from '../src/index.js';
import {
  alive,
  cgroupDirs,
  containerError,
  Fixture,
  type LooseSpec,
  type Output,
  rootfs,
  rootfsTopLevel,
  skipUnlessRoot,
  waitFor,
} from './fixtures.js';

function hasGcc(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return fs.existsSync('/usr/lib/x86_64-linux-gnu/libc.a') || fs.existsSync('/usr/lib/libc.a');
  } catch {
    return false;
  }
}
const skip =
  skipUnlessRoot() ??
  (process.arch !== 'x64' ? 'these tests use x86_64 syscall numbers' : undefined) ??
  (hasGcc() ? undefined : 'these tests need gcc and a static libc (libc6-dev)');

/**
 * `probe NAME...` makes each syscall NAME and prints `NAME=<result>` or `NAME=-1 errno=<n>`.
 * keyctl: KEYCTL_GET_KEYRING_ID of the session keyring (works for anyone without a filter);
 * unshare0: unshare(0) (works without any capability); unshare-net: unshare(CLONE_NEWNET) (needs
 * CAP_SYS_ADMIN); mount-efault: mount() with a bad target pointer (EFAULT before any capability
 * check, so EPERM can only be the filter's); ioprio, sched, personality: the current values.
 */
const PROBE_C = `
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
struct sched_attr_v1 { unsigned int size, policy; unsigned long long flags; int nice; unsigned int prio;
  unsigned long long runtime, deadline, period; unsigned int umin, umax; };
static void show(const char *name, long r) {
  if (r < 0) printf("%s=-1 errno=%d\\n", name, errno); else printf("%s=%ld\\n", name, r);
}
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    errno = 0;
    if (!strcmp(a, "keyctl")) show(a, syscall(SYS_keyctl, 0, -3, 0) < 0 ? -1 : 0);
    else if (!strcmp(a, "unshare0")) show(a, syscall(SYS_unshare, 0));
    else if (!strcmp(a, "unshare-net")) show(a, syscall(SYS_unshare, CLONE_NEWNET));
    else if (!strcmp(a, "mount-efault")) show(a, syscall(SYS_mount, (char *)0, (char *)1, (char *)0, 0, (void *)0));
    else if (!strcmp(a, "ioprio")) show(a, syscall(SYS_ioprio_get, 1, 0));
    else if (!strcmp(a, "personality")) show(a, syscall(SYS_personality, 0xffffffffUL));
    else if (!strcmp(a, "sched")) {
      struct sched_attr_v1 at;
      memset(&at, 0, sizeof at);
      if (syscall(SYS_sched_getattr, 0, &at, sizeof at, 0) < 0) show(a, -1);
      else printf("sched=policy %u nice %d\\n", at.policy, at.nice);
    } else { printf("%s=unknown\\n", a); return 2; }
  }
  fflush(stdout);
  return 0;
}
`;
const PROBE = '/home/probe';

/**
 * What the seccomp cases run: the process's seccomp state, busybox unshare and mount, the probe,
 * and a few ordinary commands (the filter must let them work).
 */
const SECCOMP_SCRIPT = `awk -F'\\t' '/^(Seccomp|Seccomp_filters|NoNewPrivs|Uid|CapEff):/ { sub(":", "", $1); print $1 "=" $2 }' /proc/self/status
unshare -n true; echo "busybox-unshare=$?"
mount -t tmpfs none /tmp; echo "busybox-mount=$?"
${PROBE} keyctl unshare0 unshare-net mount-efault
echo "ls=$(ls /bin/busybox)"; echo "cat=$(cat /etc/group | head -n 1)"; echo "pipe=$(echo a b c | wc -w)"`;

const CAP_SYS_ADMIN_BIT = 21n;
const ENOTSUP = 95;

/** `key=value` lines (the first `=` splits) as a map; other lines are ignored. */
function kv(text: string): Record<string, string> {
  const m: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) m[l.slice(0, i)] = l.slice(i + 1);
  }
  return m;
}

/** A profile that allows everything but unshare and mount (ENOTSUP) and keyctl (default errno: EPERM). */
function customProfile(): LooseSpec {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: ['unshare', 'mount'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOTSUP },
      { names: ['keyctl'], action: 'SCMP_ACT_ERRNO' },
    ],
  };
}

/** Every capability set (ambient too, so that a non-root user keeps them across execve). */
function allSets(caps: readonly string[]): LooseSpec {
  return {
    bounding: [...caps],
    effective: [...caps],
    permitted: [...caps],
    inheritable: [...caps],
    ambient: [...caps],
  };
}
const ROOT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_ADMIN'];

function readHost(file: string): string {
  return fs.readFileSync(file, 'utf8').trim();
}

/** Field 19 (nice) of /proc/<pid>/stat. */
function niceOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

describe.skipIf(skip !== undefined)(
  `container security settings on the real kernel${skip ? ` (${skip})` : ''}`,
  () => {
    let fx: Fixture;
    let topLevel: string[];
    let probeDir: string;

    beforeAll(() => {
      fx = new Fixture('sec');
      rootfs();
      topLevel = rootfsTopLevel();
      probeDir = fx.tempDir('probe');
      // A non-root container user must be able to reach the probe.
      fs.chmodSync(probeDir, 0o755);
      fs.writeFileSync(path.join(probeDir, 'probe.c'), PROBE_C);
      execFileSync(
        'gcc',
        ['-static', '-O1', '-o', path.join(probeDir, 'probe'), path.join(probeDir, 'probe.c')],
        {
          stdio: 'pipe',
        },
      );
    });
    afterEach(async () => {
      await fx.cleanup();
    });
    afterAll(async () => {
      await fx?.dispose();
      if (topLevel) expect(rootfsTopLevel()).toEqual(topLevel);
    });

    /** Bind the probe's dir read-only at /home. */
    function withProbe(s: LooseSpec): void {
      s.mounts.push({ destination: '/home', type: 'bind', source: probeDir, options: ['rbind', 'ro'] });
    }

    /** Run `args` to the end with the probe at /home; its exit, output and `key=value` lines. */
    async function runToEnd(
      args: string[],
      mutate: (s: LooseSpec) => void,
      onWarning?: (m: string) => void,
    ): Promise<{ status: number | undefined; out: string; kv: Record<string, string> }> {
      const b = fx.makeBundle({
        args,
        mutate: (s) => {
          withProbe(s);
          mutate(s);
        },
      });
      const out = fx.output();
      const { container, exited } = await Container.run({
        id: fx.id(),
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
        ...(onWarning ? { onWarning } : {}),
      });
      const exit = await exited;
      await container.delete();
      const text = out.read();
      return { status: exit.status, out: text, kv: kv(text) };
    }

    /** A running container (`args`, default `sleep 1000`) with the probe at /home. */
    async function running(mutate: (s: LooseSpec) => void, args = ['sleep', '1000']) {
      const b = fx.makeBundle({
        args,
        mutate: (s) => {
          withProbe(s);
          mutate(s);
        },
      });
      const id = fx.id();
      const out: Output = fx.output();
      const { container, exited } = await Container.run({
        id,
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
      });
      return { b, id, container, exited, pid: container.state().pid, out };
    }

    /** A config that must be refused before anything exists: the error, and nothing left behind. */
    async function refused(mutate: (s: LooseSpec) => void) {
      const b = fx.makeBundle({ args: ['true'], mutate });
      const id = fx.id();
      const before = fx.stateIds();
      const err = await containerError(
        Container.run({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
      );
      expect(fx.stateIds(), err.message).toEqual(before);
      expect(cgroupDirs(id), err.message).toEqual([]);
      return err;
    }

    describe('linux.seccomp', () => {
      it('a custom profile filters the init (root with CAP_SYS_ADMIN and no_new_privs; uid 1000 without no_new_privs, the filter loaded before the uid switch); the same configs without it do not', async () => {
        const variants: { name: string; set: (s: LooseSpec) => void; uid: string; nnp: string }[] = [
          {
            name: 'root, no_new_privs',
            set: (s) => {
              s.process.noNewPrivileges = true;
            },
            uid: '0',
            nnp: '1',
          },
          {
            name: 'uid 1000, no no_new_privs',
            set: (s) => {
              s.process.noNewPrivileges = false;
              s.process.user = { uid: 1000, gid: 1000 };
            },
            uid: '1000',
            nnp: '0',
          },
        ];
        for (const v of variants) {
          const base = (s: LooseSpec) => {
            s.process.capabilities = allSets(ROOT_CAPS);
            v.set(s);
          };
          // Control: without the filter every call works (CAP_SYS_ADMIN is effective, even for uid 1000).
          const c = await runToEnd(['sh', '-c', SECCOMP_SCRIPT], base);
          expect(c.status, `${v.name}, control: ${c.out}`).toBe(0);
          expect(c.kv, `${v.name}, control: ${c.out}`).toMatchObject({
            Seccomp: '0',
            NoNewPrivs: v.nnp,
            'busybox-unshare': '0',
            'busybox-mount': '0',
            keyctl: '0',
            unshare0: '0',
            'unshare-net': '0',
            'mount-efault': '-1 errno=14',
            ls: '/bin/busybox',
            cat: 'root:x:0:',
            pipe: '3',
          });
          expect(c.kv.Uid?.split('\t')[0], v.name).toBe(v.uid);
          expect(BigInt(`0x${c.kv.CapEff}`) & (1n << CAP_SYS_ADMIN_BIT), v.name).not.toBe(0n);

          // With the filter: the configured errnos, whatever the capabilities; the rest still works.
          const f = await runToEnd(['sh', '-c', SECCOMP_SCRIPT], (s) => {
            base(s);
            s.linux.seccomp = customProfile();
          });
          expect(f.status, `${v.name}: ${f.out}`).toBe(0);
          expect(f.kv, `${v.name}: ${f.out}`).toMatchObject({
            Seccomp: '2',
            Seccomp_filters: '1',
            NoNewPrivs: v.nnp,
            keyctl: '-1 errno=1',
            unshare0: `-1 errno=${ENOTSUP}`,
            'unshare-net': `-1 errno=${ENOTSUP}`,
            'mount-efault': `-1 errno=${ENOTSUP}`,
            ls: '/bin/busybox',
            cat: 'root:x:0:',
            pipe: '3',
          });
          expect(f.kv.Uid?.split('\t')[0], v.name).toBe(v.uid);
          expect(BigInt(`0x${f.kv.CapEff}`) & (1n << CAP_SYS_ADMIN_BIT), v.name).not.toBe(0n);
          expect(f.kv['busybox-unshare'], f.out).not.toBe('0');
          expect(f.kv['busybox-mount'], f.out).not.toBe('0');
          expect(f.out).toMatch(/^unshare: .*Operation not supported$/m);
          expect(f.out).toMatch(/^mount: .*Operation not supported$/m);
        }
      });

      it("Docker's default profile with Docker's capabilities (no no_new_privs, as Docker runs): unshare, mount, keyctl get EPERM; with CAP_SYS_ADMIN unshare and mount are allowed", async () => {
        const docker = (caps: readonly string[], seccomp: boolean) => (s: LooseSpec) => {
          s.process.noNewPrivileges = false;
          s.process.capabilities = {
            bounding: [...caps],
            effective: [...caps],
            permitted: [...caps],
          };
          if (seccomp) s.linux.seccomp = defaultSeccompProfile('x86_64', { capabilities: caps });
        };
        const dockerCaps = [...DOCKER_DEFAULT_CAPABILITIES];
        expect(dockerCaps).not.toContain('CAP_SYS_ADMIN');

        // Control: the same capabilities without the filter: unshare(0) and keyctl work, mount
        // reaches the EFAULT of its arguments; only unshare(CLONE_NEWNET) is refused (no CAP_SYS_ADMIN).
        const c = await runToEnd(['sh', '-c', SECCOMP_SCRIPT], docker(dockerCaps, false));
        expect(c.kv, c.out).toMatchObject({
          Seccomp: '0',
          keyctl: '0',
          unshare0: '0',
          'unshare-net': '-1 errno=1',
          'mount-efault': '-1 errno=14',
        });

        const f = await runToEnd(['sh', '-c', SECCOMP_SCRIPT], docker(dockerCaps, true));
        expect(f.status, f.out).toBe(0);
        expect(f.kv, f.out).toMatchObject({
          Seccomp: '2',
          Seccomp_filters: '1',
          NoNewPrivs: '0',
          keyctl: '-1 errno=1',
          unshare0: '-1 errno=1',
          'unshare-net': '-1 errno=1',
          'mount-efault': '-1 errno=1',
          ls: '/bin/busybox',
          cat: 'root:x:0:',
          pipe: '3',
        });
        expect(f.kv['busybox-unshare'], f.out).not.toBe('0');
        expect(f.kv['busybox-mount'], f.out).not.toBe('0');
        expect(f.out).toMatch(/^unshare: .*Operation not permitted$/m);

        // Docker's profile for a set with CAP_SYS_ADMIN allows unshare and mount (not keyctl).
        const a = await runToEnd(
          ['sh', '-c', SECCOMP_SCRIPT],
          docker([...dockerCaps, 'CAP_SYS_ADMIN'], true),
        );
        expect(a.status, a.out).toBe(0);
        expect(a.kv, a.out).toMatchObject({
          Seccomp: '2',
          'busybox-unshare': '0',
          'busybox-mount': '0',
          keyctl: '-1 errno=1',
          unshare0: '0',
          'unshare-net': '0',
          'mount-efault': '-1 errno=14',
        });
      });

      it("exec'd processes get the container's filter: as root, and as uid 1000 without capabilities or no_new_privs", async () => {
        const r = await running((s) => {
          s.process.capabilities = allSets(ROOT_CAPS);
          s.linux.seccomp = customProfile();
        });
        const exec = async (extra: Partial<Process>) => {
          const out = fx.output();
          const p = await r.container.exec(
            { ...r.b.config.process!, ...extra, args: ['sh', '-c', SECCOMP_SCRIPT] },
            { stdio: out.stdio },
          );
          const exit = await p.exited;
          return { status: exit.status, out: out.read(), kv: kv(out.read()) };
        };
        const e = await exec({});
        expect(e.status, e.out).toBe(0);
        expect(e.kv, e.out).toMatchObject({
          Seccomp: '2',
          Seccomp_filters: '1',
          keyctl: '-1 errno=1',
          unshare0: `-1 errno=${ENOTSUP}`,
          'unshare-net': `-1 errno=${ENOTSUP}`,
          'mount-efault': `-1 errno=${ENOTSUP}`,
          pipe: '3',
        });
        expect(e.out).toMatch(/^unshare: .*Operation not supported$/m);
        // No capabilities: unshare(0) and keyctl would work, mount would get EFAULT: the errnos are the filter's.
        const u = await exec({
          user: { uid: 1000, gid: 1000 },
          noNewPrivileges: false,
          capabilities: {},
        });
        expect(u.status, u.out).toBe(0);
        expect(u.kv, u.out).toMatchObject({
          Seccomp: '2',
          Seccomp_filters: '1',
          NoNewPrivs: '0',
          CapEff: '0000000000000000',
          keyctl: '-1 errno=1',
          unshare0: `-1 errno=${ENOTSUP}`,
          'mount-efault': `-1 errno=${ENOTSUP}`,
          pipe: '3',
        });
        expect(u.kv.Uid?.split('\t')[0]).toBe('1000');
        // The init is still filtered too.
        expect(readHost(`/proc/${r.pid}/status`)).toMatch(/^Seccomp:\t2$/m);
      });

      it('an invalid profile is an InvalidConfig naming the field, and nothing is created', async () => {
        const cases: { set: (s: LooseSpec) => void; field: RegExp }[] = [
          {
            set: (s) => {
              s.linux.seccomp = {
                defaultAction: 'SCMP_ACT_ALLOW',
                syscalls: [{ names: ['keyctl'], action: 'SCMP_ACT_FOO' }],
              };
            },
            field: /linux\.seccomp\.syscalls\[0\]\.action/,
          },
          {
            set: (s) => {
              s.linux.seccomp = { defaultAction: 'SCMP_ACT_DENY' };
            },
            field: /linux\.seccomp\.defaultAction/,
          },
          {
            // Valid for the schema, refused by the compiler.
            set: (s) => {
              s.linux.seccomp = customProfile();
              s.linux.seccomp.syscalls[1].errnoRet = 70000;
            },
            field: /linux\.seccomp\.syscalls\[1\]\.errnoRet/,
          },
          {
            set: (s) => {
              s.linux.seccomp = {
                defaultAction: 'SCMP_ACT_ALLOW',
                syscalls: [
                  {
                    names: ['keyctl'],
                    action: 'SCMP_ACT_ERRNO',
                    args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }],
                  },
                ],
              };
            },
            field: /linux\.seccomp\.syscalls\[0\]\.args\[0\]\.index/,
          },
        ];
        for (const c of cases) {
          const err = await refused(c.set);
          expect(err.code, err.message).toBe('InvalidConfig');
          expect(err.message).toMatch(c.field);
        }
      });

      it('an unknown syscall name is skipped with a warning naming it; the rest of the rule applies', async () => {
        const warnings: string[] = [];
        const r = await runToEnd(
          ['sh', '-c', `grep '^Seccomp:' /proc/self/status | tr -d '\\t'; ${PROBE} keyctl unshare0`],
          (s) => {
            s.linux.seccomp = {
              defaultAction: 'SCMP_ACT_ALLOW',
              syscalls: [
                { names: ['no_such_syscall_xyz', 'keyctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
              ],
            };
          },
          (m) => warnings.push(m),
        );
        expect(r.status, r.out).toBe(0);
        expect(r.out).toMatch(/^Seccomp:2$/m);
        expect(r.kv).toMatchObject({ keyctl: '-1 errno=13', unshare0: '0' });
        expect(
          warnings.filter((w) => w.includes('no_such_syscall_xyz')),
          warnings.join('\n'),
        ).toHaveLength(1);
      });
    });

    describe('linux.sysctl', () => {
      it("sets namespaced sysctls in the container's network and IPC namespaces, not the host's", async () => {
        const hostForward = readHost('/proc/sys/net/ipv4/ip_forward');
        const hostShmmax = readHost('/proc/sys/kernel/shmmax');
        const forward = hostForward === '1' ? '0' : '1';
        const r = await runToEnd(['cat', '/proc/sys/net/ipv4/ip_forward', '/proc/sys/kernel/shmmax'], (s) => {
          s.linux.sysctl = { 'net.ipv4.ip_forward': forward, 'kernel.shmmax': '123456789' };
        });
        expect(r.status, r.out).toBe(0);
        expect(r.out).toBe(`${forward}\n123456789\n`);
        expect(readHost('/proc/sys/net/ipv4/ip_forward')).toBe(hostForward);
        expect(readHost('/proc/sys/kernel/shmmax')).toBe(hostShmmax);

        // A network namespace joined by path (another container's, not the host's) is allowed.
        const first = await running(() => {});
        const joined = await runToEnd(['cat', '/proc/sys/net/ipv4/ip_forward'], (s) => {
          s.linux.namespaces = s.linux.namespaces.map((n: LooseSpec) =>
            n.type === 'network' ? { type: 'network', path: `/proc/${first.pid}/ns/net` } : n,
          );
          s.linux.sysctl = { 'net.ipv4.ip_forward': forward };
        });
        expect(joined.out).toBe(`${forward}\n`);
        // …the first container sees it in its own (shared) namespace.
        const out = fx.output();
        const p = await first.container.exec(
          { ...first.b.config.process!, args: ['cat', '/proc/sys/net/ipv4/ip_forward'] },
          { stdio: out.stdio },
        );
        expect((await p.exited).status).toBe(0);
        expect(out.read()).toBe(`${forward}\n`);
        expect(readHost('/proc/sys/net/ipv4/ip_forward')).toBe(hostForward);
      });

      it('refuses non-namespaced keys, kernel.hostname, and keys without a namespace of their own; nothing is created, the host is unchanged', async () => {
        const hostForward = readHost('/proc/sys/net/ipv4/ip_forward');
        const hostShmmax = readHost('/proc/sys/kernel/shmmax');
        const hostSwappiness = readHost('/proc/sys/vm/swappiness');
        const forward = hostForward === '1' ? '0' : '1';
        const without = (type: string) => (s: LooseSpec) => {
          s.linux.namespaces = s.linux.namespaces.filter((n: LooseSpec) => n.type !== type);
        };
        const cases: { key: string; value: string; set?: (s: LooseSpec) => void; why: RegExp }[] = [
          { key: 'kernel.hostname', value: 'evil', why: /"hostname" field/ },
          {
            key: 'vm.swappiness',
            value: hostSwappiness === '17' ? '18' : '17',
            why: /not a namespaced sysctl/,
          },
          { key: 'net.ipv4.ip_forward', value: forward, set: without('network'), why: /network namespace/ },
          { key: 'kernel.shmmax', value: '123456789', set: without('ipc'), why: /ipc namespace/ },
          {
            // The host's own network namespace, joined by path.
            key: 'net.ipv4.ip_forward',
            value: forward,
            set: (s) => {
              s.linux.namespaces = s.linux.namespaces.map((n: LooseSpec) =>
                n.type === 'network' ? { type: 'network', path: '/proc/self/ns/net' } : n,
              );
            },
            why: /network namespace/,
          },
        ];
        for (const c of cases) {
          const err = await refused((s) => {
            c.set?.(s);
            s.linux.sysctl = { [c.key]: c.value };
          });
          expect(err.code, err.message).toBe('InvalidConfig');
          expect(err.message).toContain(`linux.sysctl["${c.key}"]`);
          expect(err.message).toMatch(c.why);
        }
        expect(readHost('/proc/sys/net/ipv4/ip_forward')).toBe(hostForward);
        expect(readHost('/proc/sys/kernel/shmmax')).toBe(hostShmmax);
        expect(readHost('/proc/sys/vm/swappiness')).toBe(hostSwappiness);
      });
    });

    describe.skipIf(
      fs.existsSync('/sys/kernel/security/apparmor') || fs.existsSync('/sys/fs/selinux/enforce'),
    )('AppArmor and SELinux on a host with neither', () => {
      it('process.apparmorProfile and process.selinuxLabel are Unsupported, for create and exec; nothing is created', async () => {
        const a = await refused((s) => {
          s.process.apparmorProfile = 'x';
        });
        expect(a.code, a.message).toBe('Unsupported');
        expect(a.message).toMatch(/^process\.apparmorProfile: AppArmor is not enabled on this host/);
        const l = await refused((s) => {
          s.process.selinuxLabel = 'system_u:system_r:container_t:s0';
        });
        expect(l.code, l.message).toBe('Unsupported');
        expect(l.message).toMatch(/^process\.selinuxLabel: SELinux is not enabled on this host/);

        const r = await running(() => {});
        const e = await containerError(
          r.container.exec(
            { ...r.b.config.process!, args: ['true'], apparmorProfile: 'x' },
            { stdio: fx.output().stdio },
          ),
        );
        expect(e.code, e.message).toBe('Unsupported');
        expect(r.container.pids()).toEqual([r.pid]);
      });
    });

    describe('process.ioPriority, process.scheduler, linux.personality', () => {
      it('best-effort I/O priority 6, SCHED_BATCH with nice 5 and LINUX32 are set on the init, as seen inside and from the host', async () => {
        const r = await running(
          (s) => {
            s.process.ioPriority = { class: 'IOPRIO_CLASS_BE', priority: 6 };
            s.process.scheduler = { policy: 'SCHED_BATCH', nice: 5 };
            s.linux.personality = { domain: 'LINUX32' };
          },
          [
            'sh',
            '-c',
            `uname -m; ionice -p $$; ${PROBE} ioprio sched personality; echo done; exec sleep 1000`,
          ],
        );
        await waitFor(() => r.out.read().includes('done\n'), 5000, 'the probe');
        expect(r.out.lines()).toEqual([
          'i686',
          'best-effort: prio 6',
          `ioprio=${(2 << 13) | 6}`,
          'sched=policy 3 nice 5',
          'personality=8',
          'done',
        ]);
        expect(execFileSync('ionice', ['-p', String(r.pid)], { encoding: 'utf8' })).toBe(
          'best-effort: prio 6\n',
        );
        expect(execFileSync('chrt', ['-p', String(r.pid)], { encoding: 'utf8' })).toMatch(
          /scheduling policy: SCHED_BATCH\n/,
        );
        expect(niceOf(r.pid)).toBe(5);
        expect(readHost(`/proc/${r.pid}/personality`)).toBe('00000008');
      });

      it("SCHED_IDLE on the init; an exec'd process gets its own scheduler and I/O priority; personality flags are Unsupported", async () => {
        const r = await running((s) => {
          s.process.scheduler = { policy: 'SCHED_IDLE' };
        });
        expect(execFileSync('chrt', ['-p', String(r.pid)], { encoding: 'utf8' })).toMatch(
          /scheduling policy: SCHED_IDLE\n/,
        );
        expect(readHost(`/proc/${r.pid}/personality`)).toBe('00000000');
        const p = await r.container.exec(
          {
            ...r.b.config.process!,
            args: ['sleep', '1000'],
            scheduler: { policy: 'SCHED_BATCH', nice: 3 },
            ioPriority: { class: 'IOPRIO_CLASS_IDLE', priority: 0 },
          },
          { stdio: fx.output().stdio },
        );
        expect(alive(p.pid)).toBe(true);
        expect(execFileSync('chrt', ['-p', String(p.pid)], { encoding: 'utf8' })).toMatch(
          /scheduling policy: SCHED_BATCH\n/,
        );
        expect(niceOf(p.pid)).toBe(3);
        expect(execFileSync('ionice', ['-p', String(p.pid)], { encoding: 'utf8' })).toBe('idle\n');

        const err = await refused((s) => {
          s.linux.personality = { domain: 'LINUX32', flags: ['ADDR_NO_RANDOMIZE'] };
        });
        expect(err.code, err.message).toBe('Unsupported');
        expect(err.message).toMatch(/^linux\.personality\.flags/);
      });
    });
  },
);
