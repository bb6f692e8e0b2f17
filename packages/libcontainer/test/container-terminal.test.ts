// Terminals on the real kernel: process.terminal gets a pty of the container's own devpts
// (`tty` prints /dev/pts/0), made stdin, stdout, stderr, controlling terminal and /dev/console, sized
// from process.consoleSize; its master goes to a console socket (SCM_RIGHTS, as conmon and containerd
// expect) or, for run and exec without one, to the caller. The master never stays in the container.
// Errors (no console socket for create, a socket that is not there) create nothing.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { attachConsole, Container, setConsoleSize } from '../src/index.js';
import {
  type BundleOptions,
  cgroupDirs,
  containerError,
  Fixture,
  notRoot,
  rootfs,
  rootfsTopLevel,
  skipUnlessRoot,
  waitFor,
} from './fixtures.js';

/**
 * A console socket receiver like conmon's: listens on argv[1], prints READY, takes the pty master
 * (printing the name it came with), types argv[2] at the first shell prompt, and prints everything
 * the terminal shows until the pty is closed (EIO) or 10 s pass, as one JSON line.
 */
const RECEIVER = `
import json, os, select, socket, sys, time
path, text = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
print("READY", flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 1024, 4)
master = fds[0]
print("NAME " + msg.decode(), flush=True)
out = b""
end = time.time() + 10
while time.time() < end:
    r, _, _ = select.select([master], [], [], 0.3)
    if not r:
        # Type once the shell prompted and went quiet, as a person would.
        if text and b"# " in out:
            os.write(master, text.encode())
            text = ""
        continue
    try:
        d = os.read(master, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
print("OUT " + json.dumps(out.decode(errors="replace")), flush=True)
`;

interface Receiver {
  path: string;
  /** The name sent with the fd and everything the terminal showed. */
  result: Promise<{ name: string; out: string }>;
  child: ChildProcess;
}

/** Start a console socket receiver at a fresh path; resolves once it listens. */
async function receiver(dir: string, text: string): Promise<Receiver> {
  const sock = path.join(dir, 'console.sock');
  const child = spawn('python3', ['-c', RECEIVER, sock, text], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  let ready: () => void = () => undefined;
  const listening = new Promise<void>((r) => {
    ready = r;
  });
  const result = new Promise<{ name: string; out: string }>((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('READY\n')) ready();
    });
    child.on('exit', (code) => {
      const name = /^NAME (.*)$/m.exec(buf)?.[1];
      const out = /^OUT (.*)$/m.exec(buf)?.[1];
      if (name === undefined || out === undefined) reject(new Error(`receiver exited ${code}: ${buf}`));
      else resolve({ name, out: JSON.parse(out) as string });
    });
  });
  result.catch(() => undefined);
  await Promise.race([listening, result]);
  return { path: sock, result, child };
}

/** Everything a pty master shows, with a way to type into it. */
function screen(master: number) {
  let text = '';
  const a = attachConsole(master, (c) => {
    text += c.toString();
  });
  return {
    text: () => text,
    type: (s: string) => a.write(s),
    ended: a.ended,
    close: () => a.close(),
    async until(re: RegExp, ms = 10_000) {
      await waitFor(() => re.test(text), ms, `${re} on the terminal (got ${JSON.stringify(text)})`);
    },
  };
}

describe.skipIf(notRoot)(`terminals on the real kernel${notRoot ? ` (${skipUnlessRoot()})` : ''}`, () => {
  let fx: Fixture;
  let topLevel: string[];

  beforeAll(() => {
    fx = new Fixture('tty');
    rootfs();
    topLevel = rootfsTopLevel();
  });
  afterEach(async () => {
    await fx.cleanup();
  });
  afterAll(async () => {
    await fx?.dispose();
    if (topLevel) expect(rootfsTopLevel()).toEqual(topLevel);
  });

  function bundle(args: string[], opts: Partial<BundleOptions> = {}) {
    return fx.makeBundle({
      args,
      ...opts,
      mutate: (s) => {
        s.process.terminal = true;
        opts.mutate?.(s);
      },
    });
  }

  it('run without a console socket: the caller gets the master; tty, stdio, /dev/console and the size are the pty', async () => {
    const b = bundle(['sh'], {
      mutate: (s) => {
        s.process.consoleSize = { height: 31, width: 97 };
      },
    });
    const id = fx.id();
    const { container, exited, console: master } = await Container.run({ id, bundle: b.dir, root: fx.root });
    expect(master).toBeTypeOf('number');
    const t = screen(master as number);
    try {
      const pid = container.state().pid;
      // Type a line once the shell prompted and has been quiet for a moment, as a person would:
      // busybox ash's line editing may drop input that arrives while it sets the terminal up.
      let prompts = 0;
      const command = async (line: string) => {
        prompts += 1;
        await waitFor(() => t.text().split('# ').length > prompts, 10_000, `prompt ${prompts}`);
        for (let seen = ''; seen !== t.text(); ) {
          seen = t.text();
          await new Promise((r) => setTimeout(r, 300));
        }
        t.type(`${line}\n`);
      };
      await command('tty; echo hi');
      await t.until(/\/dev\/pts\/0\r\nhi\r\n/);
      // From the host: the shell holds the pty as 0, 1, 2 (and ash its /dev/tty as 10); no master.
      const fds = fs.readdirSync(`/proc/${pid}/fd`).sort();
      const links = fds.map((fd) => `${fd} ${fs.readlinkSync(`/proc/${pid}/fd/${fd}`)}`);
      expect(links.filter((l) => !l.startsWith('10 '))).toEqual([
        '0 /dev/pts/0',
        '1 /dev/pts/0',
        '2 /dev/pts/0',
      ]);
      // (Short lines: busybox line editing waits for a cursor position report before wrapping one.)
      await command('stty size; cd /proc/1/fd');
      await t.until(/31 97\r\n/);
      // A new size on the master reaches the container (what nsinit does on SIGWINCH).
      setConsoleSize(master as number, { height: 40, width: 120 });
      await command('stty size');
      await t.until(/stty size\r\n40 120\r\n/);
      await command('readlink 0; readlink 1; readlink 2');
      await t.until(/\/dev\/pts\/0\r\n\/dev\/pts\/0\r\n\/dev\/pts\/0\r\n/);
      await command('ls -l | grep -c -e ptmx -e socket; cd /');
      await t.until(/socket; cd \/\r\n0\r\n/);
      // The pty is the controlling terminal (tty_nr 136:0) and /dev/console (0x88 = 136, the pts major).
      await command('stat -c %t:%T /dev/console; cut -d" " -f7 /proc/1/stat');
      await t.until(/\r\n88:0\r\n34816\r\n/);
      await command('exit 7');
      expect((await exited).status).toBe(7);
      await t.ended;
    } finally {
      t.close();
      await container.delete({ force: true });
    }
  });

  it('CreateOptions.consoleSize sizes the pty from its creation when config.json gives none; config wins', async () => {
    // The process reads its size at once: a caller that relays (nsinit run) must not leave it 0x0
    // until its first resize arrives.
    for (const [fromConfig, want] of [
      [undefined, '23 81'],
      [{ height: 12, width: 34 }, '12 34'],
    ] as const) {
      const b = bundle(['sh', '-c', 'stty size; sleep 0.2'], {
        mutate: (s) => {
          if (fromConfig) s.process.consoleSize = fromConfig;
          else delete s.process.consoleSize;
        },
      });
      const { exited, console: master } = await Container.run({
        id: fx.id(),
        bundle: b.dir,
        root: fx.root,
        consoleSize: { height: 23, width: 81 },
      });
      const t = screen(master as number);
      try {
        await t.until(new RegExp(`${want}\\r\\n`));
        expect((await exited).status).toBe(0);
      } finally {
        t.close();
      }
    }
  });

  it('create with a console socket: the master goes there with SCM_RIGHTS; start runs the shell on it', async () => {
    const dir = fx.tempDir('sock');
    const r = await receiver(dir, 'tty; echo hi $((6*7)); stty size; exit\n');
    const b = bundle(['sh'], {
      mutate: (s) => {
        s.process.consoleSize = { height: 24, width: 80 };
      },
    });
    const id = fx.id();
    const c = await Container.create({ id, bundle: b.dir, root: fx.root, consoleSocket: r.path });
    const pid = c.state().pid;
    // Created: the init holds the pty, never the master or the console socket.
    const links = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    expect(links.filter((l) => l.startsWith('/dev/pts/'))).toEqual([
      '/dev/pts/0',
      '/dev/pts/0',
      '/dev/pts/0',
    ]);
    expect(links.some((l) => l.includes('ptmx'))).toBe(false);
    await c.start();
    const { name, out } = await r.result;
    expect(name).toBe('/dev/pts/ptmx');
    expect(out).toMatch(/\/dev\/pts\/0\r\nhi 42\r\n24 80\r\n/);
    await waitFor(() => c.state().status === 'stopped', 5000, 'the shell to exit');
    await c.delete();
  });

  it('create with process.terminal and no console socket fails and creates nothing', async () => {
    const b = bundle(['true']);
    const id = fx.id();
    const e = await containerError(Container.create({ id, bundle: b.dir, root: fx.root }));
    expect(e.code).toBe('InvalidArgument');
    expect(e.message).toBe(
      `container "${id}": cannot allocate a tty if the container will detach without a console socket (--console-socket)`,
    );
    expect(fx.stateIds()).toEqual([]);
    expect(cgroupDirs(id)).toEqual([]);
  });

  it('a console socket that is not there: a one-line error naming connect, nothing created', async () => {
    const b = bundle(['true']);
    const id = fx.id();
    const sock = path.join(fx.tempDir('none'), 'missing.sock');
    const e = await containerError(Container.run({ id, bundle: b.dir, root: fx.root, consoleSocket: sock }));
    expect(e.message).toBe(`console socket ${sock}: connect: ENOENT (no such file or directory)`);
    expect(fx.stateIds()).toEqual([]);
    expect(cgroupDirs(id)).toEqual([]);
  });

  it('a console socket without process.terminal is refused', async () => {
    const b = fx.makeBundle({ args: ['true'] });
    const id = fx.id();
    const e = await containerError(
      Container.run({ id, bundle: b.dir, root: fx.root, consoleSocket: '/tmp/whatever.sock' }),
    );
    expect(e.message).toContain('cannot use a console socket');
    expect(fx.stateIds()).toEqual([]);
  });

  it('no /dev/pts in the config: the error names the ptmx open; nothing is left', async () => {
    const b = bundle(['true'], {
      mutate: (s) => {
        s.mounts = s.mounts.filter((m: { destination: string }) => m.destination !== '/dev/pts');
      },
    });
    const id = fx.id();
    const e = await containerError(Container.run({ id, bundle: b.dir, root: fx.root }));
    expect(e.message).toBe(
      `container "${id}": terminal: open /dev/ptmx (is /dev/pts mounted?): ENOENT (no such file or directory)`,
    );
    expect(fx.stateIds()).toEqual([]);
    expect(cgroupDirs(id)).toEqual([]);
  });

  it('exec with a terminal: a new pty of the container devpts, relayed to the caller or sent to a console socket', async () => {
    // The init has pts/0; each exec gets the next one.
    const b = bundle(['sh']);
    const id = fx.id();
    const { container, exited, console: master } = await Container.run({ id, bundle: b.dir, root: fx.root });
    const init = screen(master as number);
    try {
      const proc = {
        ...b.config.process!,
        args: ['sh', '-c', 'tty; stty size; ls -1 /proc/self/fd; exit 4'],
      };
      const p = await container.exec({ ...proc, consoleSize: { height: 11, width: 22 } });
      expect(p.console).toBeTypeOf('number');
      const t = screen(p.console as number);
      expect((await p.exited).status).toBe(4);
      await t.ended;
      // 0 1 2 and the directory ls reads: neither the master nor a socket.
      expect(t.text()).toBe('/dev/pts/1\r\n11 22\r\n0\r\n1\r\n2\r\n3\r\n');
      t.close();

      const dir = fx.tempDir('sock');
      const r = await receiver(dir, 'tty; exit\n');
      const q = await container.exec({ ...b.config.process!, args: ['sh'] }, { consoleSocket: r.path });
      expect(q.console).toBeUndefined();
      expect((await r.result).out).toMatch(/\/dev\/pts\/1\r\n/);
      expect((await q.exited).status).toBe(0);

      // Without a terminal, a console socket is refused before anything runs.
      const e = await containerError(
        container.exec({ ...b.config.process!, terminal: false, args: ['true'] }, { consoleSocket: r.path }),
      );
      expect(e.message).toContain('cannot use a console socket');
    } finally {
      init.type('exit\n');
      await exited;
      init.close();
      await container.delete({ force: true });
    }
  });

  it('a user namespace container gets its pty too, owned by the process user', async () => {
    const b = bundle(['sh', '-c', 'tty; id -u; stat -L -c %u /dev/pts/0'], {
      copyRootfs: true,
      mutate: (s) => {
        s.linux.namespaces.push({ type: 'user' });
        s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        s.root.readonly = false;
        s.process.user = { uid: 1000, gid: 1000 };
      },
    });
    // The mapped root owns the rootfs copy and can reach it.
    execFileSync('chown', ['-R', '-h', '100000:100000', b.rootfs]);
    fs.chmodSync(b.dir, 0o711);
    fs.chmodSync(path.dirname(b.dir), 0o711);
    const id = fx.id();
    const { exited, console: master } = await Container.run({ id, bundle: b.dir, root: fx.root });
    const t = screen(master as number);
    expect((await exited).status).toBe(0);
    await t.ended;
    t.close();
    expect(t.text()).toBe('/dev/pts/0\r\n1000\r\n1000\r\n');
  });
});
