#!/usr/bin/env node
// Create and delete N veth pairs (default 200) inside a throwaway network namespace, three ways:
//   library  — @tsc/netlink from this one warm process (a handle bound to the netns),
//   ip/pair  — `ip -n NS link add …` / `ip -n NS link del …` spawned once per pair and per delete,
//   ip-batch — one `ip -n NS -batch FILE` holding every add and every del.
// Rounds are interleaved (library, ip/pair, ip-batch, then again) so machine noise hits all alike.
// Usage (root): node bench/veth.mjs [--pairs 200] [--runs 7] [--warmup 1]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const { openNetlink } = await import(join(here, '../packages/netlink/dist/index.js'));

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const PAIRS = arg('pairs', 200);
const RUNS = arg('runs', 7);
const WARMUP = arg('warmup', 1);

if (process.getuid?.() !== 0) {
  console.error('veth.mjs needs root (it creates a network namespace)');
  process.exit(1);
}

const ns = `tnlbench${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'tnlbench-'));
execFileSync('ip', ['netns', 'add', ns]);
const cleanup = () => {
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {}
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

const name = (i, end) => `bv${i}${end}`;
const batch = join(dir, 'batch');
writeFileSync(
  batch,
  [
    ...Array.from(
      { length: PAIRS },
      (_, i) => `link add ${name(i, 'a')} type veth peer name ${name(i, 'b')}`,
    ),
    ...Array.from({ length: PAIRS }, (_, i) => `link del ${name(i, 'a')}`),
    '',
  ].join('\n'),
);

const nl = openNetlink({ netns: { name: ns } });

function ms(t0) {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function assertEmpty() {
  const links = JSON.parse(execFileSync('ip', ['-n', ns, '-json', 'link', 'show'], { encoding: 'utf8' }));
  if (links.length !== 1) throw new Error(`leftover links: ${links.map((l) => l.ifname).join(' ')}`);
}

const subjects = {
  library: async () => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < PAIRS; i++)
      await nl.linkAdd({ kind: 'veth', name: name(i, 'a'), peer: { name: name(i, 'b') } });
    for (let i = 0; i < PAIRS; i++) await nl.linkDel(name(i, 'a'));
    return ms(t0);
  },
  'ip/pair': async () => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < PAIRS; i++) {
      const r = spawnSync('ip', [
        '-n',
        ns,
        'link',
        'add',
        name(i, 'a'),
        'type',
        'veth',
        'peer',
        'name',
        name(i, 'b'),
      ]);
      if (r.status !== 0) throw new Error(`ip link add: ${r.stderr}`);
    }
    for (let i = 0; i < PAIRS; i++) {
      const r = spawnSync('ip', ['-n', ns, 'link', 'del', name(i, 'a')]);
      if (r.status !== 0) throw new Error(`ip link del: ${r.stderr}`);
    }
    return ms(t0);
  },
  'ip-batch': async () => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('ip', ['-n', ns, '-batch', batch]);
    if (r.status !== 0) throw new Error(`ip -batch: ${r.stderr}`);
    return ms(t0);
  },
};

const samples = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
try {
  for (let round = 0; round < WARMUP + RUNS; round++) {
    for (const [k, f] of Object.entries(subjects)) {
      const t = await f();
      assertEmpty();
      if (round >= WARMUP) samples[k].push(t);
    }
  }
} finally {
  nl.close();
  cleanup();
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
console.log(
  `${PAIRS} veth pairs created and deleted, ${RUNS} interleaved rounds after ${WARMUP} warm-up (ms)`,
);
console.log('subject    median      min      max   per pair');
const med = {};
for (const [k, a] of Object.entries(samples)) {
  med[k] = median(a);
  console.log(
    `${k.padEnd(9)} ${med[k].toFixed(1).padStart(8)} ${Math.min(...a)
      .toFixed(1)
      .padStart(8)} ${Math.max(...a)
      .toFixed(1)
      .padStart(8)} ${(med[k] / PAIRS).toFixed(3).padStart(10)}`,
  );
}
console.log(`library / ip-batch: ${(med.library / med['ip-batch']).toFixed(2)} (target <= 1.0)`);
console.log(`library / ip/pair:  ${(med.library / med['ip/pair']).toFixed(3)}`);
console.log(`ip/pair / ip-batch: ${(med['ip/pair'] / med['ip-batch']).toFixed(1)}`);
