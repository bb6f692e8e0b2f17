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

// The launcher costs no process of its own: absolute paths baked in, shell builtins only.
// The snapshot is used while the node binary is not newer than the blob (a Node
// upgrade makes it fall back to the plain entry until the next build).
const q = (x) => `'${x.replaceAll("'", "'\\''")}'`;
writeFileSync(
  join(dist, 'nsinit'),
  `#!/bin/sh
# nsinit launcher, written by packages/cli/scripts/bundle.mjs for ${process.version}.
if [ -x ${q(process.execPath)} ] && [ -f ${q(blob)} ] && ! [ ${q(process.execPath)} -nt ${q(blob)} ]; then
  exec ${q(process.execPath)} --snapshot-blob ${q(blob)} -- "$@"
fi
exec node ${q(join(dist, 'main.js'))} "$@"
`,
);
chmodSync(join(dist, 'nsinit'), 0o755);
