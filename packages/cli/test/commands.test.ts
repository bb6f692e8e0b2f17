// cli.ts loads only the command module of the verb being run (start-up time): its table of
// verbs must match what each module registers, or a verb would be unknown when run alone.
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { describe, expect, test } from 'vitest';
import { COMMAND_MODULES, verbOf } from '../src/cli.js';

describe('command modules', () => {
  test('each module registers exactly the verbs (and aliases) the table names', async () => {
    const seen = new Set<string>();
    for (const m of COMMAND_MODULES) {
      const program = new Command('nsinit').enablePositionalOptions();
      (await m.load()).register(program);
      const verbs = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
      expect(verbs.sort()).toEqual([...m.verbs].sort());
      for (const v of verbs) {
        expect(seen.has(v), `verb ${v} is registered twice`).toBe(false);
        seen.add(v);
      }
    }
  });

  test('verbOf finds the verb after global options and their values', () => {
    expect(verbOf(['run', '-b', 'x', 'c1'])).toBe('run');
    expect(verbOf(['--root', '/tmp/r', 'state', 'c1'])).toBe('state');
    expect(verbOf(['--root=/tmp/r', '--log', 'f', '--log-format', 'json', 'delete', 'x'])).toBe('delete');
    expect(verbOf(['--debug', '--data-root', '/d', 'images'])).toBe('images');
    expect(verbOf(['--rootless', 'true', 'list'])).toBe('list');
    expect(verbOf(['--version'])).toBeUndefined();
    expect(verbOf([])).toBeUndefined();
    expect(verbOf(['--', 'ps', 'x'])).toBe('ps');
  });

  test.skipIf(!existsSync(new URL('../dist/nsinit.cjs', import.meta.url)))(
    'the bundle ships the module unionfs workers import from next to it (dist/unpack.js)',
    async () => {
      // Worker threads for big layers import unpack.js from beside the calling code: in the bundle
      // that is dist/unpack.js, which without this side bundle did not exist ("Cannot find module").
      const m = (await import(new URL('../dist/unpack.js', import.meta.url).href)) as {
        unpackLayer?: unknown;
      };
      expect(typeof m.unpackLayer).toBe('function');
    },
  );
});
