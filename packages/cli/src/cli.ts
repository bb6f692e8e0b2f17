import { isContainerError } from '@tsc/libcontainer';
import { Command, CommanderError } from 'commander';
import { register as cgroups } from './commands/cgroups.js';
import { register as exec } from './commands/exec.js';
import { register as imageContainers } from './commands/image-containers.js';
import { register as images } from './commands/images.js';
import { register as inspect } from './commands/inspect.js';
import { register as lifecycle } from './commands/lifecycle.js';
import { register as registry } from './commands/registry.js';
import { register as spec } from './commands/spec.js';
import { Logger } from './log.js';

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

  spec(program);
  lifecycle(program);
  exec(program);
  inspect(program);
  cgroups(program);
  imageContainers(program);
  images(program);
  registry(program);

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
    await program.parseAsync([...argv]);
  } catch (e) {
    fail(e);
  }
}
