import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultSpec } from '@tsc/libcontainer';
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
      writeFileSync(file, `${JSON.stringify(spec, null, '\t')}\n`, { mode: 0o666 });
    });
}
