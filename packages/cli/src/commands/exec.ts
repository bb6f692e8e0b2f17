import { Container, type ExecOptions, loadProcess, type Process } from '@tsc/libcontainer';
import type { Command } from 'commander';
import { collect, context, parseIntArg, UsageError } from '../context.js';
import { ownConsoleSize, relayTerminal } from '../tty.js';

interface ExecFlags {
  process?: string;
  tty?: boolean;
  consoleSocket?: string;
  detach?: boolean;
  pidFile?: string;
  cwd?: string;
  env: string[];
  user?: string;
  additionalGids: string[];
  cap: string[];
  noNewPrivs?: boolean;
  preserveFds: number;
  ignorePaused?: boolean;
  apparmor?: string;
  processLabel?: string;
}

function parseUser(u: string): { uid: number; gid?: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(u);
  if (!m) throw new UsageError(`--user: expected uid[:gid] as numbers, got "${u}"`);
  return m[2] === undefined ? { uid: Number(m[1]) } : { uid: Number(m[1]), gid: Number(m[2]) };
}

/** The process to exec: --process, or the container's own process with the flags applied (like runc). */
export function execProcess(base: Process | undefined, args: string[], f: ExecFlags): Process {
  if (f.process) {
    if (args.length) throw new UsageError('exec: give either --process or a command, not both');
    const p = loadProcess(f.process);
    if (f.tty !== undefined) p.terminal = f.tty;
    return p;
  }
  if (!args.length) throw new UsageError('exec: a command (or --process) is required');
  const p: Process = structuredClone(base ?? { user: { uid: 0, gid: 0 }, cwd: '/', args });
  p.args = args;
  p.terminal = f.tty === true;
  if (f.cwd) p.cwd = f.cwd;
  if (f.env.length) p.env = [...(p.env ?? []), ...f.env];
  if (f.user) {
    const u = parseUser(f.user);
    p.user = { ...p.user, uid: u.uid, gid: u.gid ?? p.user.gid };
  }
  if (f.additionalGids.length) {
    p.user.additionalGids = f.additionalGids.map((g) => {
      if (!/^\d+$/.test(g)) throw new UsageError(`--additional-gids: expected a number, got "${g}"`);
      return Number(g);
    });
  }
  if (f.cap.length) {
    // Never inheritable (CVE-2022-29162).
    const caps = p.capabilities ?? {};
    const add = (set: string[] | undefined) => [...new Set([...(set ?? []), ...f.cap])];
    p.capabilities = {
      ...caps,
      bounding: add(caps.bounding),
      effective: add(caps.effective),
      permitted: add(caps.permitted),
    };
  }
  if (f.noNewPrivs) p.noNewPrivileges = true;
  return p;
}

export function register(program: Command): void {
  program
    .command('exec')
    .description('run a process inside a running container')
    // Options after the container id belong to the command (sh -c ...).
    .passThroughOptions()
    .option('-p, --process <file>', 'path to a process.json (an OCI process object)')
    .option('-t, --tty', 'allocate a pseudo-TTY from the container')
    .option('--console-socket <path>', 'AF_UNIX socket that receives the pty master (with --tty)')
    .option('-d, --detach', 'detach from the process')
    .option('--pid-file <path>', 'write the process host pid to this file')
    .option('--cwd <dir>', 'working directory in the container')
    .option('-e, --env <K=V>', 'set an environment variable (repeatable)', collect, [])
    .option('-u, --user <uid[:gid]>', 'user id and optional group id')
    .option('-g, --additional-gids <gid>', 'additional group id (repeatable)', collect, [])
    .option(
      '-c, --cap <CAP_X>',
      'add a capability to the bounding, effective and permitted sets (repeatable)',
      collect,
      [],
    )
    .option('--no-new-privs', 'set no_new_privs for the process')
    .option('--preserve-fds <n>', 'pass N extra fds (3 .. 3+N-1)', parseIntArg('--preserve-fds'), 0)
    .option('--ignore-paused', 'accepted for runc compatibility')
    .option('--apparmor <profile>', 'AppArmor profile (not supported on this host)')
    .option('--process-label <label>', 'SELinux label (not supported on this host)')
    .argument('<container-id>')
    .argument('[command...]')
    .action(async (id: string, args: string[], f: ExecFlags, cmd: Command) => {
      const ctx = context(cmd);
      if (f.apparmor || f.processLabel)
        throw new UsageError('exec: AppArmor and SELinux labels are not available on this host');
      const c = Container.load(id, ctx.root);
      const proc = execProcess(c.config().process, args, f);
      if (proc.terminal && f.detach && !f.consoleSocket)
        throw new UsageError(
          'exec: cannot allocate a tty if nsinit will detach without setting --console-socket',
        );
      const opts: ExecOptions = { preserveFds: f.preserveFds };
      if (f.pidFile) opts.pidFile = f.pidFile;
      if (f.consoleSocket) opts.consoleSocket = f.consoleSocket;
      // Relayed here: the pty starts with our terminal's size.
      const size = proc.terminal && !f.consoleSocket ? ownConsoleSize() : undefined;
      if (size) proc.consoleSize = size;
      // Listen before the process exists: a signal that arrives while it is being set up is held
      // and forwarded once it runs (without this, SIGTERM then killed nsinit and orphaned it).
      let target = 0;
      const held: NodeJS.Signals[] = [];
      const forward = (sig: NodeJS.Signals) => {
        if (!target) {
          held.push(sig);
          return;
        }
        try {
          process.kill(target, sig);
        } catch {
          // gone already
        }
      };
      const relayed = proc.terminal === true && !f.consoleSocket;
      // With a terminal, SIGWINCH resizes the pty instead (relayTerminal).
      const sigs = (
        ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const
      ).filter((s) => !relayed || s !== 'SIGWINCH');
      if (!f.detach) for (const s of sigs) process.on(s, forward);
      const { pid, exited, console: master } = await c.exec(proc, opts);
      if (f.detach) process.exit(0);
      target = pid;
      for (const s of held.splice(0)) forward(s);
      const r = master === undefined ? await exited : await relayTerminal(master, exited);
      process.exit(r.status);
    });
}
