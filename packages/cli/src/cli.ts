import { isContainerError } from '@tsc/libcontainer';
import { Command, CommanderError } from 'commander';
import { Logger } from './log.js';

/**
 * The command modules, in help order, with the verbs each registers. Only the module of the verb
 * being run is imported (a bundle's `run` must not load and evaluate the image, layer, registry
 * and network code: start-up time is most of a short container's time); help, an unknown verb or
 * no verb load them all. `test/commands.test.ts` checks this table against what they register.
 */
export const COMMAND_MODULES: ReadonlyArray<{
  verbs: readonly string[];
  /** The runtime's own verbs: a little JavaScript around syscalls, done in milliseconds. */
  short?: true;
  load: () => Promise<{ register: (program: Command) => void }>;
}> = [
  { verbs: ['spec'], short: true, load: () => import('./commands/spec.js') },
  {
    verbs: ['create', 'start', 'run', 'kill', 'delete'],
    short: true,
    load: () => import('./commands/lifecycle.js'),
  },
  { verbs: ['exec'], short: true, load: () => import('./commands/exec.js') },
  { verbs: ['state', 'list', 'ls', 'ps'], short: true, load: () => import('./commands/inspect.js') },
  {
    verbs: ['pause', 'resume', 'events', 'stats', 'update'],
    short: true,
    load: () => import('./commands/cgroups.js'),
  },
  {
    verbs: ['diff', 'commit', 'import', '__monitor', '__port-proxy'],
    load: () => import('./commands/image-containers.js'),
  },
  {
    verbs: ['images', 'rmi', 'tag', 'inspect', 'save', 'load', 'image'],
    load: () => import('./commands/images.js'),
  },
  { verbs: ['pull', 'push', 'login', 'logout'], load: () => import('./commands/registry.js') },
];

/** Global options that take a value (`--root DIR`), to find the verb after them. */
const GLOBAL_VALUE_OPTIONS = new Set(['--root', '--data-root', '--log', '--log-format', '--rootless']);

/** The verb of a command line (the user's arguments, without node and the script), if any. */
export function verbOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') return args[i + 1];
    if (!a.startsWith('-')) return a;
    if (GLOBAL_VALUE_OPTIONS.has(a)) i++;
  }
  return undefined;
}

/**
 * Whether a command line is one of the runtime's short commands (`run -b`, `state`, `kill`, …),
 * as opposed to image work (`pull`, `load`, `commit`, `run --image`, …) that runs JavaScript for
 * seconds. The launcher starts Node without V8's optimising compilers, which a short command
 * never profits from (they compile on a helper thread while the command is already ending, and
 * their code costs page faults); the loader turns them back on unless this says short.
 */
export function isShortCommand(args: readonly string[]): boolean {
  if (!moduleOf(args)?.short) return false;
  return !args.some((a) => a === '--image' || a.startsWith('--image='));
}

/** The command module of a command line's verb (none for no verb or an unknown one). */
function moduleOf(args: readonly string[]): (typeof COMMAND_MODULES)[number] | undefined {
  const verb = verbOf(args);
  return verb === undefined ? undefined : COMMAND_MODULES.find((m) => m.verbs.includes(verb));
}

/** Run nsinit with `argv` (node's form: argv[0] node, argv[1] the script). */
export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('nsinit')
    .description('nsinit: run OCI containers (runc-compatible verbs and flags)')
    .version('0.1.0', '-v, --version')
    .option(
      '--root <dir>',
      'root directory for storage of container state (default /run/nsinit; $XDG_RUNTIME_DIR/nsinit when not root)',
    )
    .option(
      '--data-root <dir>',
      'root directory of images, layers and writable container layers (default /var/lib/nsinit, or $NSINIT_DATA_ROOT)',
    )
    .option('--log <file>', 'log file for errors and warnings')
    .option('--log-format <format>', 'log format: text or json', 'text')
    .option('--debug', 'enable debug output (accepted for runc compatibility)')
    .option('--systemd-cgroup', 'use the systemd cgroup driver (not supported)')
    .option('--rootless <value>', 'accepted for runc compatibility (auto, true, false)')
    // Usage errors are one line, like every other error.
    .configureOutput({
      outputError: (str, write) => write(`nsinit: ${str.replace(/^error: /, '').trim()}\n`),
    })
    // Global options go before the verb, as in runc: `spec --rootless` is spec's flag, not the
    // global `--rootless <value>` (which would take the next argument as its value).
    .enablePositionalOptions()
    .exitOverride();

  program.hook('preAction', (_this, action) => {
    if ((action.optsWithGlobals() as { systemdCgroup?: boolean }).systemdCgroup) {
      throw new Error(
        '--systemd-cgroup: the systemd cgroup driver is not supported; use the default cgroupfs driver',
      );
    }
  });

  const fail = (e: unknown): never => {
    const g = program.opts() as { log?: string; logFormat?: string };
    const log = new Logger(g.log, g.logFormat === 'json' ? 'json' : 'text');
    if (e instanceof CommanderError) process.exit(e.exitCode);
    const msg = e instanceof Error ? e.message : String(e);
    log.error(msg);
    if (
      !isContainerError(e) &&
      !(e instanceof Error && e.constructor.name === 'UsageError') &&
      process.env.NSINIT_DEBUG
    ) {
      process.stderr.write(`${(e as Error).stack}\n`);
    }
    process.exit(1);
  };

  try {
    const one = moduleOf(argv.slice(2));
    for (const m of one ? [one] : COMMAND_MODULES) (await m.load()).register(program);
    await program.parseAsync([...argv]);
  } catch (e) {
    fail(e);
  }
}
