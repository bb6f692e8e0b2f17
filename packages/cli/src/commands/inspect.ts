import { execFileSync } from 'node:child_process';
import { Container } from '@tsc/libcontainer';
import type { Command } from 'commander';
import { context, UsageError } from '../context.js';

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join(''))
    .join('\n');
}

export function register(program: Command): void {
  program
    .command('state')
    .description('output the state of a container as OCI state JSON')
    .argument('<container-id>')
    .action((id: string, _f: unknown, cmd: Command) => {
      const ctx = context(cmd);
      process.stdout.write(`${JSON.stringify(Container.load(id, ctx.root).state(), null, 2)}\n`);
    });

  program
    .command('list')
    .alias('ls')
    .description('list containers')
    .option('-f, --format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'display only container ids')
    .action((f: { format: string; quiet?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const all = Container.list(ctx.root);
      if (f.quiet) {
        for (const s of all) process.stdout.write(`${s.id}\n`);
        return;
      }
      if (f.format === 'json') {
        process.stdout.write(`${JSON.stringify(all)}\n`);
        return;
      }
      if (f.format !== 'table') throw new UsageError(`--format: expected table or json, got "${f.format}"`);
      const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
      for (const s of all) rows.push([s.id, String(s.pid), s.status, s.bundle, s.created, s.owner || 'root']);
      process.stdout.write(`${table(rows)}\n`);
    });

  program
    .command('ps')
    .description('list the processes running inside a container')
    .option('-f, --format <format>', 'table or json', 'table')
    .argument('<container-id>')
    .argument('[ps-args...]', 'arguments for ps(1) (default -ef)')
    .action((id: string, psArgs: string[], f: { format: string }, cmd: Command) => {
      const ctx = context(cmd);
      const pids = Container.load(id, ctx.root).pids();
      if (f.format === 'json') {
        process.stdout.write(`${JSON.stringify(pids)}\n`);
        return;
      }
      if (f.format !== 'table') throw new UsageError(`--format: expected table or json, got "${f.format}"`);
      const out = execFileSync('ps', psArgs.length ? psArgs : ['-ef'], { encoding: 'utf8' });
      const lines = out.split('\n');
      const header = lines[0] ?? '';
      const col = header.trim().split(/\s+/).indexOf('PID');
      if (col < 0) throw new UsageError('ps output has no PID column');
      const set = new Set(pids);
      const keep = lines.slice(1).filter((l) => set.has(Number(l.trim().split(/\s+/)[col])));
      process.stdout.write(`${[header, ...keep].join('\n')}\n`);
    });
}
