import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultSeccompProfile, defaultSpec, nativeArch, parseConfig } from '@tsc/libcontainer';
import type { Command } from 'commander';
import { UsageError } from '../context.js';

export function register(program: Command): void {
  program
    .command('spec')
    .description('create a new specification file (config.json) like runc spec')
    .option('-b, --bundle <dir>', 'path to the root of the bundle directory', '.')
    .option('--rootless', 'generate a configuration for a rootless container')
    .action((opts: { bundle: string; rootless?: boolean }) => {
      const file = join(opts.bundle, 'config.json');
      if (existsSync(file)) throw new UsageError(`File ${file} exists. Remove it first`);
      const spec = defaultSpec({ rootless: opts.rootless === true });
      // runc's default config plus a seccomp profile with the effect of Docker's default,
      // for the capabilities the config grants.
      const arch = nativeArch();
      if (spec.linux && (arch === 'x86_64' || arch === 'aarch64')) {
        spec.linux.seccomp = parseConfig({
          ...spec,
          linux: {
            ...spec.linux,
            seccomp: defaultSeccompProfile(arch, {
              capabilities: spec.process?.capabilities?.bounding ?? [],
            }),
          },
        }).linux?.seccomp;
      }
      writeFileSync(file, `${JSON.stringify(spec, null, '\t')}\n`, { mode: 0o666 });
    });
}
