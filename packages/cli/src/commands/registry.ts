import { join } from 'node:path';
import {
  ContentStore,
  familiarName,
  isImageError,
  openImageStore,
  parsePlatform,
  parseReference,
  type Reference,
} from '@tsc/image';
import type { ClientOptions, Credentials, PullProgress, PushProgress } from '@tsc/registry-client';
import { LayerStore } from '@tsc/unionfs';
import type { Command } from 'commander';
import { type Context, collect, context, UsageError } from '../context.js';

// The registry client (undici) and the progress bars (cli-progress) are loaded when a registry
// command runs, not at every nsinit start (they cost more than starting a container).
type RegistryModule = typeof import('@tsc/registry-client');
let registryModule: RegistryModule | undefined;
async function registry(): Promise<RegistryModule> {
  registryModule ??= await import('@tsc/registry-client');
  return registryModule;
}
async function progressDisplay(options: { quiet: boolean; out?: NodeJS.WriteStream }) {
  const { ProgressDisplay } = await import('../progress.js');
  return new ProgressDisplay(options);
}

interface RegistryFlags {
  insecureRegistry?: string[];
  caFile?: string;
}

export interface PullFlags extends RegistryFlags {
  platform?: string;
  dataRoot?: string;
  quiet?: boolean;
  /** Where the progress goes (default stdout; `run --image` sends it to stderr). */
  out?: NodeJS.WriteStream;
}

interface PushFlags extends RegistryFlags {
  from?: string;
  dataRoot?: string;
  quiet?: boolean;
}

function registryOptions(cmd: Command): Command {
  return cmd
    .option(
      '--insecure-registry <host>',
      'a registry that may be reached over plain HTTP or unverified HTTPS (repeatable; loopback hosts always may)',
      collect,
    )
    .option(
      '--ca-file <file>',
      'extra CA certificates (PEM) to trust (also read: /etc/docker/certs.d/HOST/*.crt)',
    );
}

function clientOptions(f: RegistryFlags): ClientOptions {
  return {
    ...(f.insecureRegistry ? { insecureRegistries: f.insecureRegistry } : {}),
    ...(f.caFile ? { caFile: f.caFile } : {}),
    userAgent: 'nsinit/0.1.0',
  };
}

/** Docker's short layer id: the first 12 hex digits. */
function shortId(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}

/** `verb NAME: message`, one line; a parse error of the name is the user's to fix. */
function fail(verb: string, name: string, e: unknown): never {
  if (isImageError(e) && e.code === 'InvalidReference') throw new UsageError(e.message);
  const msg = e instanceof Error ? e.message : String(e);
  if (registryModule?.isRegistryError(e) || isImageError(e)) throw new UsageError(`${verb} ${name}: ${msg}`);
  throw new Error(`${verb} ${name}: ${msg}`);
}

function ref(text: string): Reference {
  try {
    return parseReference(text);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Aborts on SIGINT/SIGTERM (a partial download is kept for the next pull). */
function interruptible(): { signal: AbortSignal; done: () => void } {
  const ac = new AbortController();
  const on = () => ac.abort(new Error('interrupted'));
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  return {
    signal: ac.signal,
    done: () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

const PULL_STATUS: Record<string, string> = {
  waiting: 'Pulling fs layer',
  downloading: 'Downloading',
  retrying: 'Retrying',
  verifying: 'Verifying Checksum',
  complete: 'Download complete',
  exists: 'Already exists',
};

const PUSH_STATUS: Record<string, string> = {
  waiting: 'Preparing',
  pushing: 'Pushing',
  pushed: 'Pushed',
  exists: 'Layer already exists',
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a line from the terminal, without echo when `hidden`. */
async function prompt(question: string, hidden: boolean): Promise<string> {
  process.stderr.write(question);
  const stdin = process.stdin;
  if (hidden && stdin.isTTY) stdin.setRawMode(true);
  stdin.resume();
  let text = '';
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (b: Buffer) => {
        for (const ch of b.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            resolve(text);
            return;
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            reject(new UsageError('login: interrupted'));
            return;
          }
          if (ch === '\u007f') text = text.slice(0, -1);
          else text += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    if (hidden && stdin.isTTY) stdin.setRawMode(false);
    if (hidden) process.stderr.write('\n');
    stdin.pause();
  }
}

/** `https://host:5000/v2/` → `host:5000`; no server means Docker Hub. */
function serverHost(server: string | undefined): string {
  if (!server) return 'docker.io';
  let h = server.replace(/^[a-z]+:\/\//i, '');
  const slash = h.indexOf('/');
  if (slash >= 0) h = h.slice(0, slash);
  if (!h) throw new UsageError(`"${server}" is not a registry server`);
  return ['index.docker.io', 'registry-1.docker.io'].includes(h) ? 'docker.io' : h;
}

/**
 * `nsinit pull`: the image's blobs into `<dataRoot>/content`, verified, then its layers
 * extracted into the layer store (so `run --image` starts at once), with docker-pull-like lines.
 * `run --image` calls it too for an image it does not have.
 */
export async function pullImage(ctx: Context, image: string, f: PullFlags): Promise<void> {
  const r = ref(image);
  const name = familiarName(r);
  if (f.platform) {
    try {
      parsePlatform(f.platform);
    } catch (e) {
      throw new UsageError(`--platform: ${(e as Error).message}`);
    }
  }
  const display = await progressDisplay({ quiet: f.quiet === true, ...(f.out ? { out: f.out } : {}) });
  const stop = interruptible();
  const client = new (await registry()).RegistryClient(clientOptions(f));
  try {
    const store = await openImageStore(f.dataRoot ?? ctx.dataRoot);
    display.print(`${r.digest && !r.tag ? r.digest : r.tag}: Pulling from ${r.path}`);
    // Download and unpack together (the first missing layer unpacks while it downloads, the
    // others as soon as they are stored), so `run --image` starts at once.
    const { pullAndUnpack } = await import('../pull-unpack.js');
    const layerStore = await LayerStore.open({ root: f.dataRoot ?? ctx.dataRoot });
    const downloaded = new Set<string>();
    const { pull: res } = await pullAndUnpack(store, layerStore, r, {
      client,
      signal: stop.signal,
      ...(f.platform ? { platform: f.platform } : {}),
      // NSINIT_PULL_STREAM=0: unpack from the stored blobs only (for comparisons, bench/pull-run.mjs)
      stream: process.env.NSINIT_PULL_STREAM !== '0',
      onProgress: (e: PullProgress) => {
        if (e.type === 'warning') {
          if (!f.quiet) ctx.log.warn(e.message);
          return;
        }
        if (e.type !== 'blob' || e.kind !== 'layer') return;
        if (e.status === 'complete' || e.status === 'exists') downloaded.add(e.digest);
        const status = PULL_STATUS[e.status] ?? e.status;
        display.update(
          shortId(e.digest),
          status,
          e.status === 'downloading' ? { current: e.current ?? 0, total: e.size } : undefined,
        );
      },
      onExtract: (layer, bytes) => {
        // A layer streaming into the unpacker shows its download until that is complete.
        if (downloaded.has(layer.digest))
          display.update(shortId(layer.digest), 'Extracting', { current: bytes, total: layer.size });
      },
    });
    for (const layer of res.manifest.layers) display.update(shortId(layer.digest), 'Pull complete');
    display.stop();
    if (f.quiet) {
      process.stdout.write(`${r.toString()}\n`);
      return;
    }
    display.print(`Digest: ${res.digest}`);
    display.print(
      res.updated ? `Status: Downloaded newer image for ${name}` : `Status: Image is up to date for ${name}`,
    );
    display.print(r.toString());
  } catch (e) {
    display.stop();
    fail('pull', name, e);
  } finally {
    stop.done();
    await client.close();
  }
}

export function register(program: Command): void {
  registryOptions(
    program
      .command('pull')
      .description('download an image from a registry into the content store (<data-root>/content)')
      .argument('<image>', 'NAME[:TAG|@DIGEST], e.g. busybox, 127.0.0.1:5000/app:1')
      .option(
        '--platform <os/arch[/variant]>',
        'the platform to choose from a multi-platform image (default: this machine)',
      )
      .option('--data-root <dir>', 'data root (default /var/lib/nsinit, or the global --data-root)')
      .option('-q, --quiet', 'print only the image name'),
  ).action(async (image: string, f: PullFlags, cmd: Command) => {
    await pullImage(context(cmd), image, f);
  });

  registryOptions(
    program
      .command('push')
      .description('upload an image from the content store to a registry')
      .argument('<image>', 'NAME[:TAG] to push to (and, without --from, the name in the store)')
      .option('--from <name>', 'push the store image named so (default: the same name)')
      .option('--data-root <dir>', 'data root (default /var/lib/nsinit, or the global --data-root)')
      .option('-q, --quiet', 'print only the digest'),
  ).action(async (image: string, f: PushFlags, cmd: Command) => {
    const ctx = context(cmd);
    const r = ref(image);
    const name = familiarName(r);
    const source = f.from ? ref(f.from).toString() : r.toString();
    const display = await progressDisplay({ quiet: f.quiet === true });
    const stop = interruptible();
    const client = new (await registry()).RegistryClient(clientOptions(f));
    try {
      const store = await ContentStore.open(join(f.dataRoot ?? ctx.dataRoot, 'content'), { create: false });
      display.print(`The push refers to repository [${r.name}]`);
      const res = await (await registry()).push(store, r, {
        client,
        signal: stop.signal,
        source,
        onProgress: (e: PushProgress) => {
          if (e.type !== 'blob' || e.kind !== 'layer') return;
          const status =
            e.status === 'mounted' ? `Mounted from ${e.from}` : (PUSH_STATUS[e.status] ?? e.status);
          display.update(
            shortId(e.digest),
            status,
            e.status === 'pushing' ? { current: e.current ?? 0, total: e.size } : undefined,
          );
        },
      });
      display.stop();
      if (f.quiet) {
        process.stdout.write(`${res.descriptor.digest}\n`);
        return;
      }
      display.print(`${r.tag ?? 'digest'}: digest: ${res.descriptor.digest} size: ${res.descriptor.size}`);
    } catch (e) {
      display.stop();
      fail('push', name, e);
    } finally {
      stop.done();
      await client.close();
    }
  });

  registryOptions(
    program
      .command('login')
      .description("log in to a registry (credentials stored like Docker's, in $DOCKER_CONFIG/config.json)")
      .argument('[server]', 'the registry host[:port] (default Docker Hub)')
      .option('-u, --username <name>', 'user name')
      .option(
        '-p, --password <password>',
        'password (insecure: visible to other users; use --password-stdin)',
      )
      .option('--password-stdin', 'read the password from standard input'),
  ).action(
    async (
      server: string | undefined,
      f: RegistryFlags & { username?: string; password?: string; passwordStdin?: boolean },
      cmd: Command,
    ) => {
      context(cmd);
      const host = serverHost(server);
      if (f.password !== undefined && f.passwordStdin)
        throw new UsageError('--password and --password-stdin are mutually exclusive');
      let password = f.password;
      if (f.password !== undefined)
        process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
      let username = f.username;
      if (f.passwordStdin) {
        if (!username) throw new UsageError('login: --password-stdin needs --username');
        password = (await readStdin()).replace(/\r?\n$/, '');
      }
      if (username === undefined) {
        if (!process.stdin.isTTY)
          throw new UsageError('login: no username: use --username (and --password-stdin)');
        username = (await prompt('Username: ', false)).trim();
      }
      if (password === undefined) {
        if (!process.stdin.isTTY) throw new UsageError('login: no password: use --password-stdin');
        password = await prompt('Password: ', true);
      }
      if (!username) throw new UsageError('login: the username is empty');
      if (!password) throw new UsageError('login: the password is empty');
      const creds: Credentials = { username, password };
      try {
        await (await registry()).checkLogin(host, creds, clientOptions(f));
        await (await registry()).storeDockerCredentials(host, creds);
      } catch (e) {
        fail('login', host, e);
      }
      process.stdout.write('Login Succeeded\n');
    },
  );

  program
    .command('logout')
    .description('remove the stored credentials of a registry')
    .argument('[server]', 'the registry host[:port] (default Docker Hub)')
    .action(async (server: string | undefined, _f: unknown, cmd: Command) => {
      context(cmd);
      const host = serverHost(server);
      let removed: boolean;
      try {
        removed = await (await registry()).removeDockerCredentials(host);
      } catch (e) {
        fail('logout', host, e);
      }
      process.stdout.write(
        removed ? `Removing login credentials for ${host}\n` : `Not logged in to ${host}\n`,
      );
    });
}
