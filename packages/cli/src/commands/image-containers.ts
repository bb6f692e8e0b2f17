import { spawn } from 'node:child_process';
import { commitImage, type Digest, openImageStore, resolveImage } from '@tsc/image';
import { Container, type CreateOptions, isContainerError } from '@tsc/libcontainer';
import { attachNetwork, parseExpose, runPortProxy } from '@tsc/libcontainer/network';
import { closeFd, pidfdOpen, watchReadable } from '@tsc/syscall';
import { LayerStore } from '@tsc/unionfs';
import type { Command } from 'commander';
import { type Context, collect, context, UsageError } from '../context.js';
import {
  hasImageContainer,
  type ImageRunFlags,
  importTarball,
  parseImageRunFlags,
  prepareImageContainer,
  readImageContainer,
  removeImageContainer,
} from '../image-containers.js';
import { relayTerminal } from '../tty.js';
import { pullImage } from './registry.js';

/** argv that runs this very CLI again (bundled or not) with `args`. */
function selfCommand(args: readonly string[]): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1] as string, ...args];
}

type RunFlags = ImageRunFlags & {
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  bridge?: string;
  subnet?: string;
  pull?: string;
};

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/** `nsinit run --image REF [flags] [-- CMD ARGS…]`. */
export async function runImage(ctx: Context, f: RunFlags, cmdArgs: string[]): Promise<never> {
  const req = parseImageRunFlags(f, cmdArgs);
  if (f.detach && req.terminal && !f.consoleSocket)
    throw new UsageError('cannot allocate a tty if nsinit will detach without setting --console-socket');
  const policy = f.pull ?? 'missing';
  if (policy !== 'missing' && policy !== 'never' && policy !== 'always')
    throw new UsageError(`--pull "${policy}": use missing, never or always`);
  if (policy === 'always')
    await pullImage(ctx, req.image, { out: process.stderr, ...(f.platform ? { platform: f.platform } : {}) });
  // Like `docker run`: an image the store lacks is pulled first (progress on stderr).
  const pullMissing = async () => {
    process.stderr.write(`Unable to find image '${req.image}' locally\n`);
    await pullImage(ctx, req.image, { out: process.stderr, ...(f.platform ? { platform: f.platform } : {}) });
  };
  const p = await prepareImageContainer(ctx, req, policy === 'missing' ? pullMissing : undefined);
  const { id } = p;
  const opts: CreateOptions = {
    id,
    bundle: p.bundle,
    root: ctx.root,
    onWarning: (m) => ctx.log.warn(m),
    onCreated: async ({ pid }) => {
      await attachNetwork({
        root: ctx.root,
        id,
        pid,
        mode: req.network,
        ...(f.bridge !== undefined ? { bridge: f.bridge } : {}),
        ...(f.subnet !== undefined ? { subnet: f.subnet } : {}),
        publish: req.publish,
        expose: p.exposedPorts.map((e) => parseExpose(e)),
        links: req.links,
        dns: req.dns,
        addHosts: req.addHosts,
        hostname: p.spec.hostname ?? id,
        ...(p.filesDir ? { filesDir: p.filesDir } : {}),
        proxyCommand: selfCommand(['__port-proxy']),
      });
    },
  };
  if (f.pidFile) opts.pidFile = f.pidFile;
  if (f.consoleSocket) opts.consoleSocket = f.consoleSocket;
  let run: Awaited<ReturnType<typeof Container.run>>;
  try {
    run = await Container.run(opts);
  } catch (e) {
    await removeImageContainer({ ...ctx, id }).catch(() => {});
    throw e;
  }
  const { container, exited, console: master } = run;
  if (f.detach) {
    if (req.rm) {
      // Nobody waits for a detached container: a small monitor removes it when it exits.
      const [cmd, ...args] = selfCommand(['--root', ctx.root, '--data-root', ctx.dataRoot, '__monitor', id]);
      spawn(cmd as string, args, { detached: true, stdio: 'ignore' }).unref();
    }
    process.stdout.write(`${id}\n`);
    process.exit(0);
  }
  const forward = (sig: NodeJS.Signals) => {
    try {
      container.kill(sig);
    } catch {
      // gone already
    }
  };
  for (const s of FORWARDED) process.on(s, forward);
  const r = master === undefined ? await exited : await relayTerminal(master, exited);
  for (const s of FORWARDED) process.off(s, forward);
  if (req.rm) await removeContainer(ctx, id);
  process.exit(r.status);
}

/** Deletes the OCI container (force) and, for an image container, everything else it had. */
async function removeContainer(ctx: Context, id: string): Promise<void> {
  try {
    await Container.load(id, ctx.root).delete({ force: true, onWarning: (m) => ctx.log.warn(m) });
  } catch (e) {
    if (!(isContainerError(e) && e.code === 'NotFound')) throw e;
  }
  await deleteImageContainer(ctx, id);
}

/** Called by `delete` after the OCI container is gone: the image container's remains. */
export async function deleteImageContainer(ctx: Context, id: string): Promise<void> {
  if (hasImageContainer(ctx.dataRoot, id)) await removeImageContainer({ ...ctx, id });
}

function imageRecord(ctx: Context, id: string) {
  const rec = readImageContainer(ctx.dataRoot, id);
  if (!rec)
    throw new UsageError(
      `container "${id}" was not made from an image (no ${ctx.dataRoot}/containers/${id})`,
    );
  return rec;
}

export function register(program: Command): void {
  program
    .command('diff')
    .description("list a container's changes to its image's files (A added, C changed, D deleted)")
    .argument('<container-id>')
    .action(async (id: string, _f: unknown, cmd: Command) => {
      const ctx = context(cmd);
      imageRecord(ctx, id);
      const layers = await LayerStore.open({ root: ctx.dataRoot });
      const out = (await layers.diff(id)).map((c) => `${c.kind} ${c.path}\n`).join('');
      process.stdout.write(out);
    });

  program
    .command('commit')
    .description("make a new image from a container's changes")
    .argument('<container-id>')
    .argument('[ref]', 'name of the new image (REPOSITORY[:TAG])')
    .option(
      '-c, --change <instruction>',
      'apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL)',
      collect,
    )
    .option('-m, --message <text>', 'commit message')
    .option('-a, --author <name>', 'author')
    .option('--no-pause', 'do not pause the container while its changes are read')
    .action(
      async (
        id: string,
        ref: string | undefined,
        f: { change?: string[]; message?: string; author?: string; pause?: boolean },
        cmd: Command,
      ) => {
        const ctx = context(cmd);
        const rec = imageRecord(ctx, id);
        const store = await openImageStore(ctx.dataRoot);
        const base = await resolveImage(store, rec.imageId);
        const layers = await LayerStore.open({ root: ctx.dataRoot });
        let paused = false;
        if (f.pause !== false) {
          try {
            const c = Container.load(id, ctx.root);
            if (c.state().status === 'running') {
              c.pause();
              paused = true;
            }
          } catch {
            // stopped, or no cgroup freezer: read it as it is
          }
        }
        let layer: { descriptor: import('@tsc/image').Descriptor; diffID: Digest };
        try {
          layer = await layers.exportDiff(id, store);
        } finally {
          if (paused) Container.load(id, ctx.root).resume();
        }
        const r = await commitImage({
          store,
          base,
          layer,
          createdBy: `nsinit commit ${id}`,
          ...(f.change ? { changes: f.change } : {}),
          ...(f.message !== undefined ? { message: f.message } : {}),
          ...(f.author !== undefined ? { author: f.author } : {}),
          ...(ref !== undefined ? { ref } : {}),
        });
        process.stdout.write(`${r.id}\n`);
      },
    );

  program
    .command('import')
    .description('make a one-layer image from a root filesystem tarball (plain or gzip), like docker import')
    .argument('<file>', 'the tarball, or - for stdin')
    .argument('[ref]', 'name of the new image (REPOSITORY[:TAG])')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction (CMD, ENV, …)', collect)
    .option('-m, --message <text>', 'commit message for the history')
    .action(
      async (
        file: string,
        ref: string | undefined,
        f: { change?: string[]; message?: string },
        cmd: Command,
      ) => {
        const ctx = context(cmd);
        const id = await importTarball(ctx.dataRoot, file === '-' ? process.stdin : file, {
          file,
          ...(ref !== undefined ? { ref } : {}),
          ...(f.change ? { changes: f.change } : {}),
          ...(f.message !== undefined ? { message: f.message } : {}),
        });
        process.stdout.write(`${id}\n`);
      },
    );

  // Internal: removes a detached --rm container when its init exits.
  program
    .command('__monitor', { hidden: true })
    .argument('<container-id>')
    .action(async (id: string, _f: unknown, cmd: Command) => {
      const ctx = context(cmd);
      let pid = 0;
      try {
        const s = Container.load(id, ctx.root).state();
        if (s.status !== 'stopped') pid = s.pid;
      } catch {
        // already gone
      }
      if (pid > 0) {
        let fd = -1;
        try {
          fd = pidfdOpen(pid);
        } catch {
          // exited between state() and here
        }
        if (fd >= 0) {
          await new Promise<void>((resolve) => {
            const w = watchReadable(fd, () => {
              w.close();
              resolve();
            });
          });
          closeFd(fd);
        }
      }
      await removeContainer(ctx, id);
    });

  // Internal: the userland proxy of published ports (started detached by attachNetwork).
  program
    .command('__port-proxy', { hidden: true })
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]')
    .action(async (args: string[]) => {
      await runPortProxy(args);
    });
}
