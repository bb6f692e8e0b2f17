// cli.ts loads only the command module of the verb being run (start-up time): its table of
// verbs must match what each module registers, or a verb would be unknown when run alone.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { describe, expect, test } from 'vitest';
import { COMMAND_MODULES, isShortCommand, verbOf } from '../src/cli.js';

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

  test('short commands: the runtime verbs, not image work', () => {
    for (const args of [
      ['run', '-b', 'x', 'c1'],
      ['--root', '/r', 'delete', '-f', 'c1'],
      ['state', 'c1'],
      ['exec', 'c1', 'true'],
      ['events', '--stats', 'c1'],
      ['spec'],
    ]) {
      expect(isShortCommand(args), args.join(' ')).toBe(true);
    }
    for (const args of [
      ['pull', 'busybox'],
      ['run', '--image', 'busybox', '--', 'true'],
      ['create', '--image=busybox', 'c1'],
      ['commit', 'c1'],
      ['load', '-i', 'x.tar'],
      ['--version'],
      [],
      ['no-such-verb'],
    ]) {
      expect(isShortCommand(args), args.join(' ')).toBe(false);
    }
  });

  const launcher = new URL('../dist/nsinit', import.meta.url);
  test.skipIf(!existsSync(launcher))(
    "the launcher's Node flags are those the code cache was made with (V8 refuses it otherwise)",
    () => {
      // A mismatch costs ~40 ms per start and nothing else: only this shows it.
      const env = { ...process.env, NSINIT_CHECK_CODE_CACHE: '1' };
      for (const args of [
        ['spec', '--help'],
        ['pull', '--help'],
      ]) {
        const out = execFileSync('sh', ['-c', '"$0" "$@" 2>&1', launcher.pathname, ...args], { env });
        expect(String(out).split('\n')[0], args.join(' ')).toBe('nsinit: code cache accepted');
      }
    },
  );

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
