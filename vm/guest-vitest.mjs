// In the VM: run the project's own vitest suites (`vm/run.sh vitest[:PKGS[:FILTER]]`), one package
// at a time, and print the same summary line as guest-tests.mjs: `VM-TESTS: N passed, M failed`.
//   node vm/guest-vitest.mjs PKG[,PKG] [FILTER]     (defaults: tsc_vm_vitest / tsc_vm_vitest_filter env)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** VM knobs (environment variables of run.sh and the kernel command line, not turbo task inputs). */
const env = (name) => process.env[name];

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkgs = (process.argv[2] ?? env('tsc_vm_vitest') ?? 'cgroups').split(',').filter(Boolean);
const filter = process.argv[3] ?? env('tsc_vm_vitest_filter') ?? '';
const vitest = path.join(REPO, 'node_modules/vitest/vitest.mjs');

let passed = 0;
let failed = 0;
let skipped = 0;
let broken = 0;
for (const pkg of pkgs) {
  const out = `/tmp/vitest-${pkg}.json`;
  const t0 = Date.now();
  const args = [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`];
  if (filter) args.push(filter);
  const r = spawnSync(process.execPath, args, {
    cwd: path.join(REPO, 'packages', pkg),
    stdio: 'inherit',
    env: { ...process.env, CI: '1', NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  let res;
  try {
    res = JSON.parse(fs.readFileSync(out, 'utf8'));
  } catch (e) {
    console.log(
      `not ok - vitest ${pkg}: no JSON result (exit ${r.status}, signal ${r.signal}): ${e.message}`,
    );
    broken++;
    continue;
  }
  for (const file of res.testResults ?? []) {
    for (const t of file.assertionResults ?? []) {
      const name = `${pkg}/${path.relative(path.join(REPO, 'packages', pkg), file.name)}: ${t.fullName}`;
      if (t.status === 'passed') console.log(`ok - ${name}`);
      else if (t.status === 'failed') {
        const msg = (t.failureMessages ?? []).join('\n').split('\n').slice(0, 6).join('\n#   ');
        console.log(`not ok - ${name}\n#   ${msg}`);
      }
    }
  }
  passed += res.numPassedTests ?? 0;
  failed += res.numFailedTests ?? 0;
  skipped += (res.numPendingTests ?? 0) + (res.numTodoTests ?? 0);
  if (res.numFailedTestSuites && !res.numFailedTests) broken += res.numFailedTestSuites;
  console.log(
    `# vitest ${pkg}: ${res.numPassedTests} passed, ${res.numFailedTests} failed, ${res.numPendingTests} skipped in ${((Date.now() - t0) / 1000).toFixed(1)} s (exit ${r.status})`,
  );
}
console.log(`# ${skipped} skipped${broken ? `, ${broken} suite(s) failed to run` : ''}`);
console.log(`VM-TESTS: ${passed} passed, ${failed + broken} failed`);
process.exit(failed + broken === 0 && passed > 0 ? 0 : 1);
