// Build the fast form of nsinit: one CommonJS bundle of the CLI and everything it
// imports (koffi stays outside: a native addon is loaded at run time), a V8 startup
// snapshot of it, and dist/nsinit, a launcher that starts Node from the snapshot.
// Without the snapshot (another Node version, no blob), the launcher runs dist/main.js.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');
const bundle = join(dist, 'nsinit.cjs');
const blob = join(dist, 'nsinit.blob');

await build({
  entryPoints: [join(dist, 'snapshot.js')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: bundle,
  external: ['koffi'],
  // import.meta.url in the sources resolves relative files (the executor
  // binary, koffi): point it at the bundle itself.
  define: { 'import.meta.url': '__nsinitBundleUrl' },
  banner: {
    js: `var __nsinitBundleUrl = require('node:url').pathToFileURL(${JSON.stringify(bundle)}).href;`,
  },
  logLevel: 'warning',
});

// The executor binary next to the bundle, where the bundled code looks for it.
const req = createRequire(import.meta.url);
const executorDist = dirname(createRequire(req.resolve('@tsc/libcontainer')).resolve('@tsc/executor'));
copyFileSync(join(executorDist, 'nsinit-executor'), join(dist, 'nsinit-executor'));
chmodSync(join(dist, 'nsinit-executor'), 0o755);

rmSync(blob, { force: true });
// Node warns that child_process is not verified in snapshots; nsinit only uses it at run time.
execFileSync(process.execPath, ['--no-warnings', '--snapshot-blob', blob, '--build-snapshot', bundle], {
  stdio: 'inherit',
});

writeFileSync(
  join(dist, 'nsinit'),
  `#!/bin/sh
# nsinit launcher: start Node from the V8 snapshot built for this Node version.
d=$(dirname "$(readlink -f "$0")")
if [ -f "$d/nsinit.blob" ] && [ "$(cat "$d/nsinit.node-version" 2>/dev/null)" = "$(node -p process.version 2>/dev/null || true)" ]; then
  exec node --snapshot-blob "$d/nsinit.blob" -- "$@"
fi
exec node "$d/main.js" "$@"
`,
);
chmodSync(join(dist, 'nsinit'), 0o755);
writeFileSync(join(dist, 'nsinit.node-version'), process.version);
