// cli.ts loads only the command module of the verb being run (start-up time): its table of
// verbs must match what each module registers, or a verb would be unknown when run alone.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    "the launcher's Node flags are those the code caches were made with (V8 refuses them otherwise)",
    () => {
      // A mismatch costs ~40 ms per start (~60 ms more for a side bundle) and nothing else: only
      // this shows it. `pull` and `load` of things that are not there fail, after loading the
      // registry and archive side bundles (compiled under other flags than the main bundle).
      const dir = mkdtempSync(join(tmpdir(), 'nsinit-cache-check-'));
      try {
        writeFileSync(join(dir, 'x.tar'), 'not a tar');
        const env = { ...process.env, NSINIT_CHECK_CODE_CACHE: '1' };
        const cases: Array<[string[], string[]]> = [
          [['spec', '--help'], ['nsinit.cjs']],
          [
            ['pull', '--data-root', dir, '127.0.0.1:1/none:1'],
            ['nsinit.cjs', 'nsinit-registry.cjs'],
          ],
          [
            ['load', '--data-root', dir, '-i', join(dir, 'x.tar')],
            ['nsinit.cjs', 'nsinit-archive.cjs'],
          ],
        ];
        for (const [args, bundles] of cases) {
          const r = spawnSync(launcher.pathname, args, { env, encoding: 'utf8' });
          const lines = r.stderr.split('\n').filter((l) => l.startsWith('nsinit: code cache'));
          expect(lines, args.join(' ')).toEqual(bundles.map((b) => `nsinit: code cache accepted (${b})`));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
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
