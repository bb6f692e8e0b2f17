// Build the fast form of nsinit: one minified CommonJS bundle of the CLI and
// everything it imports (koffi stays outside: a native addon), a V8 code cache
// for it, and dist/nsinit, a launcher. Node then neither resolves hundreds of
// modules nor parses and compiles them: it reads two files and runs.
// (A V8 startup snapshot was tried first: deserialising it cost as much as
// evaluating the bundle; the code cache is ~50 ms faster here.)
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');
const bundle = join(dist, 'nsinit.cjs');
const loader = join(dist, 'nsinit-loader.cjs');
const cache = `${bundle}.cache`;

/**
 * The Node flags of the launcher. V8's code cache is only accepted under the flags it was made
 * with, so the cache is made under these too.
 * - `--v8-pool-size=1`: one V8 helper thread instead of four: a CLI run gains nothing from more
 *   on a small machine, and each costs its start and its stack's page faults;
 * - `--no-opt --no-sparkplug`: no optimising compilers for the runtime's short commands (the
 *   loader turns them back on for the others, see isShortCommand in src/cli.ts). In a `run` of
 *   ~100 ms TurboFan compiled functions on a helper thread that were never used again; each
 *   compiled function costs memory, and on VMs where a page fault costs ~15 us that is the price;
 * - `--max-semi-space-size=1` (MB): the young generation stays at its initial size. A start
 *   keeps most of what it allocates (modules, schemas), so V8 doubled it at the first scavenges:
 *   ~480 more pages touched per `run`, more than the extra scavenges cost.
 * Measured with page-fault counts and CPU time per `nsinit run` (docs/ARCHITECTURE.md §5).
 */
const NODE_FLAGS = ['--v8-pool-size=1', '--no-opt', '--no-sparkplug', '--max-semi-space-size=1'];

/** Package entry → the side bundle that holds it (see the side-bundles plugin). */
const SIDE_BUNDLES = {
  '@tsc/registry-client': 'nsinit-registry.cjs',
  '@tsc/image/archive': 'nsinit-archive.cjs',
};

// koffi's native addon, as koffi itself would find it on this machine (glibc), resolved once here
// rather than at every start (see @tsc/syscall's loadKoffi). Checked: its version is koffi's.
const koffiAddon = (() => {
  const fromCli = createRequire(join(here, '..', 'package.json'));
  const fromSyscall = createRequire(fromCli.resolve('@tsc/libcontainer'));
  const fromKoffi = createRequire(createRequire(fromSyscall.resolve('@tsc/syscall')).resolve('koffi'));
  const koffiVersion = fromKoffi('./package.json').version;
  const pkg = `@koromix/koffi-${process.platform}-${process.arch}`;
  try {
    if (fromKoffi(`${pkg}/package.json`).version !== koffiVersion) return undefined;
    return fromKoffi.resolve(`${pkg}/${process.platform}_${process.arch}/koffi.node`);
  } catch {
    return undefined; // another platform layout: koffi's own loader at run time
  }
})();

// V8 accepts a code cache whose source has the same length, whatever the text: no cache may
// outlive its bundle, not even for the seconds a build takes (a start meanwhile compiles).
for (const f of ['nsinit.cjs', ...Object.values(SIDE_BUNDLES)]) {
  rmSync(join(dist, `${f}.cache`), { force: true });
}

await build({
  entryPoints: [join(dist, 'cli.js')],
  bundle: true,
  minify: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: bundle,
  // Native addons stay outside: koffi (FFI) and zstd-napi (zstd layers), resolved from the CLI's node_modules.
  external: ['koffi', 'zstd-napi'],
  // import.meta.url in the sources resolves files next to the code (the
  // executor binary, koffi): point it at the bundle itself.
  define: {
    'import.meta.url': '__nsinitBundleUrl',
    ...(koffiAddon ? { 'process.env.TSC_KOFFI_ADDON': JSON.stringify(koffiAddon) } : {}),
  },
  banner: {
    js: `var __nsinitBundleUrl = require('node:url').pathToFileURL(${JSON.stringify(bundle)}).href;`,
  },
  logLevel: 'warning',
  plugins: [
    {
      // What only some commands need goes into bundles of its own, read and compiled only when
      // such a command runs: the registry client (undici alone is a third of the size) and
      // the archive code (tar). Their dynamic import()s become require()s of the side bundles.
      name: 'side-bundles',
      setup(b) {
        b.onResolve({ filter: /^@tsc\/(registry-client|image\/archive)$/ }, (args) =>
          args.kind === 'dynamic-import'
            ? { path: `./${SIDE_BUNDLES[args.path]}`, external: true }
            : undefined,
        );
      },
    },
    {
      // commander requires child_process at load, for executable subcommands (`git-foo` style),
      // which nsinit does not have; child_process pulls in net and stream (~12 ms per start).
      // The bundle gets it on first use instead.
      name: 'commander-lazy-child-process',
      setup(b) {
        b.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, async (args) => {
          const text = readFileSync(args.path, 'utf8');
          const eager = "const childProcess = require('node:child_process');";
          if (!text.includes(eager)) return undefined; // another commander version: leave it be
          const lazy = "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };";
          return { contents: text.replace(eager, lazy), loader: 'js', resolveDir: dirname(args.path) };
        });
      },
    },
    {
      // require('node:process') is the global process object; as a builtin module it is compiled
      // at start (commander requires it): the bundle takes the global instead.
      name: 'process-is-global',
      setup(b) {
        b.onResolve({ filter: /^(node:)?process$/ }, () => ({
          path: 'process',
          namespace: 'global-process',
        }));
        b.onLoad({ filter: /.*/, namespace: 'global-process' }, () => ({
          contents: 'module.exports = process;',
          loader: 'js',
        }));
      },
    },
    {
      // zod ships ~40 locales (a third of the bundle); error messages here are English,
      // so only `en` is kept. Less to read, compile and collect at every start.
      name: 'zod-english-only',
      setup(b) {
        b.onResolve({ filter: /[\\/]locales[\\/]index\.js$/ }, (args) =>
          args.importer.includes(`${'/'}zod${'/'}`)
            ? { path: join(dirname(args.importer), '../locales/en.js'), namespace: 'zod-locales' }
            : undefined,
        );
        b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
          contents: `export { default as en } from ${JSON.stringify(args.path)};`,
          resolveDir: dirname(args.path),
        }));
      },
    },
  ],
});

// Code compiled by vm.Script (the loader below, for the code cache) cannot use import() on
// Node 20 without --experimental-vm-modules: the import()s esbuild left (node builtins and the
// native externals, all CommonJS) become require()s, still lazy, resolved from the bundle.
// The file is then stored as the function the loader calls, the way Node wraps a CommonJS module:
// the loader compiles it as it is (joining a wrapper to 0.8 MB of source at every start made V8
// copy it once more, ~190 page faults).
{
  const text = readFileSync(bundle, 'utf8');
  const rewritten = text.replace(/\bimport\(("[^"]+")\)/g, 'Promise.resolve().then(()=>require($1))');
  writeFileSync(bundle, `(function (exports, require, module, __filename, __dirname) {${rewritten}\n})`);
}

for (const [entry, file] of Object.entries(SIDE_BUNDLES)) {
  await build({
    entryPoints: [createRequire(join(here, '..', 'package.json')).resolve(entry)],
    bundle: true,
    minify: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: join(dist, file),
    external: ['koffi', 'zstd-napi'],
    define: {
      'import.meta.url': '__nsinitBundleUrl',
      ...(koffiAddon ? { 'process.env.TSC_KOFFI_ADDON': JSON.stringify(koffiAddon) } : {}),
    },
    banner: {
      js: `var __nsinitBundleUrl = require('node:url').pathToFileURL(${JSON.stringify(join(dist, file))}).href;`,
    },
    logLevel: 'warning',
  });
  // Stored as the function the loader calls, like the main bundle (see there).
  const out = join(dist, file);
  writeFileSync(
    out,
    `(function (exports, require, module, __filename, __dirname) {${readFileSync(out, 'utf8')}\n})`,
  );
}

/** Side bundle → how the loader decodes it: latin1 (one copy) when it is ASCII, else utf8. */
const sideEncodings = Object.fromEntries(
  Object.values(SIDE_BUNDLES).map((f) => [
    `./${f}`,
    readFileSync(join(dist, f)).some((b) => b > 0x7f) ? 'utf8' : 'latin1',
  ]),
);

// @tsc/unionfs unpacks big layers on worker threads that import its `unpack.js` from next to
// the calling code: for the bundle, that is dist/unpack.js. It is an ES module of its own (the
// worker imports it); `require` is made for what CommonJS dependencies inside it need.
{
  const unionfsIndex = createRequire(join(here, '..', 'package.json')).resolve('@tsc/unionfs');
  await build({
    entryPoints: [join(dirname(unionfsIndex), 'unpack.js')],
    bundle: true,
    minify: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(dist, 'unpack.js'),
    external: ['koffi', 'zstd-napi'],
    define: koffiAddon ? { 'process.env.TSC_KOFFI_ADDON': JSON.stringify(koffiAddon) } : {},
    banner: {
      js: "import { createRequire as __nsinitCreateRequire } from 'node:module'; const require = __nsinitCreateRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
}

// V8 turns an ASCII file into a one-byte string straight from the bytes; one non-ASCII byte
// (a µ in a regular expression did it) makes the loader decode the whole bundle as UTF-8 into a
// two-byte string: ~10 ms more at every start. esbuild escapes strings, not regex literals.
for (const f of ['nsinit.cjs']) {
  const bytes = readFileSync(join(dist, f));
  const at = bytes.findIndex((b) => b > 0x7f);
  if (at >= 0) {
    const around = bytes.subarray(Math.max(0, at - 40), at + 10).toString('utf8');
    throw new Error(
      `bundle: ${f} is not ASCII at byte ${at} (${JSON.stringify(around)}): escape it in the source`,
    );
  }
}

// The executor binary next to the bundle, where the bundled code looks for it.
const req = createRequire(import.meta.url);
const executorDist = dirname(createRequire(req.resolve('@tsc/libcontainer')).resolve('@tsc/executor'));
copyFileSync(join(executorDist, 'nsinit-executor'), join(dist, 'nsinit-executor'));
chmodSync(join(dist, 'nsinit-executor'), 0o755);

writeFileSync(
  loader,
  `'use strict';
// nsinit: run the bundle with the V8 code cache made at build time (a stale or
// missing cache only costs speed: V8 then compiles as usual).
const fs = require('node:fs');
const vm = require('node:vm');
const dir = ${JSON.stringify(dist)};
const file = ${JSON.stringify(bundle)};
/** The side bundles the main one requires (\`./nsinit-registry.cjs\`…) and how they are decoded. */
const SIDE = ${JSON.stringify(sideEncodings)};
const readInto = (path, buf) => {
  const fd = fs.openSync(path, 'r');
  try {
    let n = 0;
    for (let r; n < buf.length && (r = fs.readSync(fd, buf, n, buf.length - n, n)) > 0; ) n += r;
    return n;
  } finally {
    fs.closeSync(fd);
  }
};
const size = (path) => {
  try {
    return fs.statSync(path).size;
  } catch {
    return 0;
  }
};
/**
 * Compile a bundle file (a wrapped function) with its code cache (\`FILE.cache\`). Fresh memory
 * costs a page fault per 4 KiB (~15 us on some VMs), so both files go through one buffer: the
 * source is read and copied into a string (a one-byte string in one copy when it is ASCII, as
 * the main bundle is, checked at build), then the cache is read over it.
 */
function compile(path, encoding) {
  const cacheSize = size(\`\${path}.cache\`);
  const buf = Buffer.allocUnsafeSlow(Math.max(size(path), cacheSize));
  const source = buf.toString(encoding, 0, readInto(path, buf));
  let cachedData;
  try {
    if (cacheSize > 0) cachedData = buf.subarray(0, readInto(\`\${path}.cache\`, buf));
  } catch {}
  const script = new vm.Script(source, { filename: path, cachedData });
  if (process.env.NSINIT_CHECK_CODE_CACHE) {
    // For tests: whether V8 took the cache (it refuses one made under other flags or another Node).
    const how = cachedData === undefined ? 'missing' : script.cachedDataRejected ? 'rejected' : 'accepted';
    process.stderr.write(\`nsinit: code cache \${how} (\${path.slice(dir.length + 1)})\\n\`);
  }
  if (process.env.NSINIT_MAKE_CODE_CACHE) {
    process.on('exit', () => fs.writeFileSync(\`\${path}.cache\`, script.createCachedData()));
  }
  return script;
}
/** Evaluate a compiled bundle: its exports. */
function run(script, path, req) {
  const m = { exports: {} };
  script.runInThisContext()(m.exports, req, m, path, dir);
  return m.exports;
}
// The bundles require from the directory they share with this loader: this file's own require
// resolves the same (node:module's createRequire would load four more builtins, esm loader
// included, at every start). Side bundles are compiled here too, with their caches.
const sideExports = new Map();
const bundleRequire = Object.assign(
  (id) => {
    const encoding = SIDE[id];
    if (encoding === undefined) return require(id);
    if (!sideExports.has(id)) {
      const path = \`\${dir}/\${id.slice(2)}\`;
      sideExports.set(id, run(compile(path, encoding), path, require));
    }
    return sideExports.get(id);
  },
  { resolve: require.resolve, cache: require.cache },
);
// The launcher starts Node without its optimising compilers (see isShortCommand): back on for
// anything that is not a short runtime command, before side bundles are compiled.
const optimise = () => require('node:v8').setFlagsFromString('--opt --sparkplug');
if (process.env.NSINIT_MAKE_SIDE_CACHES) {
  // Build time: the side bundles' caches, made under the flags they are used with.
  optimise();
  for (const id of Object.keys(SIDE)) bundleRequire(id);
  process.exit(0);
}
const main = run(compile(file, 'latin1'), file, bundleRequire);
if (!main.isShortCommand(process.argv.slice(2))) optimise();
main.main(process.argv);
`,
);

// Make the cache after a real command has run, so the functions it compiled lazily are in it
// too. Best is the hot path itself: as root, `run` of a throw-away container whose rootfs holds
// only the executor binary (it exits at once: it gets no program), which covers config
// validation, seccomp, the init program, cgroups, state and delete (~7% fewer instructions
// per `nsinit run` than a cache made by `spec`). Where that cannot run (not root, no cgroups,
// a build sandbox), `spec`, which loads and validates a whole config, makes it instead.
rmSync(cache, { force: true });
const tmp = mkdtempSync(join(tmpdir(), 'nsinit-cache-'));
const makeCache = (args) =>
  execFileSync(process.execPath, [...NODE_FLAGS, loader, ...args], {
    env: { ...process.env, NSINIT_MAKE_CODE_CACHE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
try {
  let warmed = false;
  if (process.geteuid?.() === 0 && !process.env.NSINIT_CACHE_FROM_SPEC) {
    const rootfs = join(tmp, 'bundle', 'rootfs');
    mkdirSync(rootfs, { recursive: true });
    copyFileSync(join(dist, 'nsinit-executor'), join(rootfs, 'nsinit-executor'));
    makeCache(['spec', '--bundle', join(tmp, 'bundle')]);
    const config = JSON.parse(readFileSync(join(tmp, 'bundle', 'config.json'), 'utf8'));
    config.process.args = ['/nsinit-executor'];
    config.process.terminal = false;
    writeFileSync(join(tmp, 'bundle', 'config.json'), JSON.stringify(config));
    rmSync(cache, { force: true });
    try {
      makeCache([
        '--root',
        join(tmp, 'state'),
        'run',
        '-b',
        join(tmp, 'bundle'),
        `nsinit-build-${process.pid}`,
      ]);
      warmed = true;
    } catch (e) {
      // The executor, given no program, exits 120: that is the expected end of this run.
      warmed = e.status === 120 && existsSync(cache);
      if (!warmed) {
        const why = String(e.stderr ?? e.message)
          .trim()
          .split('\n')[0];
        console.warn(`bundle: code cache from \`spec\` instead of \`run\` (${why})`);
      }
    }
  }
  if (!warmed) {
    rmSync(cache, { force: true });
    rmSync(join(tmp, 'spec'), { recursive: true, force: true });
    mkdirSync(join(tmp, 'spec'));
    makeCache(['spec', '--bundle', join(tmp, 'spec')]);
  }
  // The side bundles' caches: compiled and evaluated (so their module code is in the cache),
  // under the flags `pull`, `save`… run them with (the loader's NSINIT_MAKE_SIDE_CACHES).
  execFileSync(process.execPath, [...NODE_FLAGS, loader], {
    env: { ...process.env, NSINIT_MAKE_CODE_CACHE: '1', NSINIT_MAKE_SIDE_CACHES: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

// The launcher: absolute paths, no process of its own.
const q = (x) => `'${x.replaceAll("'", "'\\''")}'`;
writeFileSync(
  join(dist, 'nsinit'),
  `#!/bin/sh
# nsinit launcher, written by packages/cli/scripts/bundle.mjs.
# ${NODE_FLAGS.join(' ')}: see packages/cli/scripts/bundle.mjs.
if [ -x ${q(process.execPath)} ]; then exec ${q(process.execPath)} ${NODE_FLAGS.join(' ')} ${q(loader)} "$@"; fi
exec node ${NODE_FLAGS.join(' ')} ${q(loader)} "$@"
`,
);
chmodSync(join(dist, 'nsinit'), 0o755);
