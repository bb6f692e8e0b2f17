import { Container, type CreateOptions, loadBundleConfig } from '@tsc/libcontainer';
import type { Command } from 'commander';
import { type Context, context, parseIntArg, UsageError } from '../context.js';
import { hasImageContainer } from '../image-container-dir.js';
import type { ImageRunFlags } from '../image-containers.js';
import { ownConsoleSize, relayTerminal } from '../tty.js';
import { addImageRunFlags } from './image-run-flags.js';

// The image stack (@tsc/image, @tsc/unionfs, container networks) is imported only by what needs
// it: `run --image`, and `delete` of a container made from an image. `run` of a bundle, the
// runc-compatible path, neither loads nor evaluates it.
const imageCommands = () => import('./image-containers.js');

/** `delete`'s second half: an image container's bundle, writable layer and network, if any. */
async function deleteImageContainer(ctx: Context, id: string): Promise<void> {
  if (hasImageContainer(ctx.dataRoot, id)) await (await imageCommands()).deleteImageContainer(ctx, id);
}

interface CreateFlags {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  pidfdSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  preserveFds?: number;
}

function createFlags(cmd: Command): Command {
  return cmd
    .option('-b, --bundle <dir>', 'path to the root of the bundle directory', '.')
    .option('--console-socket <path>', 'AF_UNIX socket that receives the pty master (needs process.terminal)')
    .option('--pidfd-socket <path>', 'AF_UNIX socket that receives a pidfd of the init (not supported yet)')
    .option('--pid-file <path>', 'write the host pid of the container init to this file, atomically')
    .option('--no-pivot', 'do not use pivot_root to jail the process inside the rootfs')
    .option('--no-new-keyring', 'do not create a new session keyring for the container')
    .option(
      '--preserve-fds <n>',
      'pass N extra fds (3 .. 3+N-1) to the container',
      parseIntArg('--preserve-fds'),
      0,
    );
}

function createOptions(id: string, f: CreateFlags, ctx: Context): CreateOptions {
  if (f.pidfdSocket) throw new UsageError('--pidfd-socket: not supported by this version of nsinit yet');
  const o: CreateOptions = {
    id,
    bundle: f.bundle,
    root: ctx.root,
    preserveFds: f.preserveFds ?? 0,
    // commander turns --no-pivot into pivot: false
    noPivot: (f as { pivot?: boolean }).pivot === false,
    onWarning: (m) => ctx.log.warn(m),
  };
  if (f.pidFile) o.pidFile = f.pidFile;
  if (f.consoleSocket) o.consoleSocket = f.consoleSocket;
  return o;
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;

export function register(program: Command): void {
  createFlags(program.command('create').description('create a container (its process waits for start)'))
    .argument('<container-id>')
    .action(async (id: string, f: CreateFlags, cmd: Command) => {
      const ctx = context(cmd);
      await Container.create(createOptions(id, f, ctx));
      process.exit(0);
    });

  program
    .command('start')
    .description('start one or more created containers')
    .argument('<container-id...>')
    .action(async (ids: string[], _f: unknown, cmd: Command) => {
      const ctx = context(cmd);
      for (const id of ids) await Container.load(id, ctx.root).start({ onWarning: (m) => ctx.log.warn(m) });
    });

  addImageRunFlags(
    createFlags(
      program
        .command('run')
        .description(
          'create and start a container from a bundle (run ID) or an image (run --image REF [-- CMD…]), and wait for it',
        ),
    ),
  )
    .option('-d, --detach', 'detach from the container process')
    .option('--keep', 'do not delete the container after it exits')
    // Like runc and docker run: flags end at the first argument, the rest is the command's.
    .passThroughOptions()
    .argument('[container-id|cmd...]', 'the container id; with --image, the command and its arguments')
    .action(
      async (
        args: string[],
        f: CreateFlags & ImageRunFlags & { detach?: boolean; keep?: boolean },
        cmd: Command,
      ) => {
        const ctx = context(cmd);
        if (f.image !== undefined) return (await imageCommands()).runImage(ctx, f, args);
        if (args.length !== 1) throw new UsageError(`run: expected one container id, got ${args.length}`);
        const id = args[0] as string;
        if (f.detach && !f.consoleSocket && loadBundleConfig(f.bundle).process?.terminal) {
          throw new UsageError(
            'cannot allocate a tty if nsinit will detach without setting --console-socket',
          );
        }
        const opts = createOptions(id, f, ctx);
        // Relayed here: the pty starts with our terminal's size (unless config.json sets one).
        const size = !f.detach && !f.consoleSocket ? ownConsoleSize() : undefined;
        if (size) opts.consoleSize = size;
        const { container, exited, console: master } = await Container.run(opts);
        if (f.detach) process.exit(0);
        const forward = (sig: NodeJS.Signals) => {
          try {
            container.kill(sig);
          } catch {
            // it may be gone already
          }
        };
        // With a terminal, SIGWINCH resizes the pty instead (relayTerminal).
        const sigs = FORWARDED.filter((s) => master === undefined || s !== 'SIGWINCH');
        for (const s of sigs) process.on(s, forward);
        const r = master === undefined ? await exited : await relayTerminal(master, exited);
        for (const s of sigs) process.off(s, forward);
        if (!f.keep) await container.delete({ force: true, onWarning: (m) => ctx.log.warn(m) });
        process.exit(r.status);
      },
    );

  program
    .command('kill')
    .description('send a signal (default SIGTERM) to the container init')
    .option('-a, --all', 'send the signal to every process of the container')
    .argument('<container-id>')
    .argument('[signal]', 'signal name or number', 'SIGTERM')
    .action((id: string, signal: string, f: { all?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      Container.load(id, ctx.root).kill(signal, { all: f.all === true });
    });

  program
    .command('delete')
    .description('delete containers and everything they hold')
    .option('-f, --force', 'kill the container first if it is still running')
    .argument('<container-id...>')
    .action(async (ids: string[], f: { force?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      for (const id of ids) {
        let c: Container;
        try {
          c = Container.load(id, ctx.root);
        } catch (e) {
          if (f.force && (e as { code?: string }).code === 'NotFound') {
            await deleteImageContainer(ctx, id);
            continue;
          }
          throw e;
        }
        await c.delete({ force: f.force === true, onWarning: (m) => ctx.log.warn(m) });
        await deleteImageContainer(ctx, id);
      }
    });
}
