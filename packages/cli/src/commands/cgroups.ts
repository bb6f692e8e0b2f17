// The cgroup verbs: pause, resume, events, stats, update (runc's, plus a `docker stats`-like view).
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import {
  type CgroupStats,
  Container,
  ContainerError,
  isContainerError,
  type LinuxResources,
  parseResourcesJSON,
  runcEventJSON,
} from '@tsc/libcontainer';
import type { Command } from 'commander';
import { context, UsageError } from '../context.js';

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go duration ("5s", "1m30s", "250ms", "1.5s") in milliseconds; must be positive. */
export function parseDuration(flag: string, v: string): number {
  // \u00b5 is µ: the bundle stays ASCII, which V8 reads as a one-byte string (see bundle.mjs).
  const re = /(\d+(?:\.\d+)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)/gy;
  let ms = 0;
  let end = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    ms += Number(m[1]) * (DURATION_UNITS[m[2] as string] ?? 0);
    end = re.lastIndex;
  }
  if (v === '' || end !== v.length || !(ms >= 1)) {
    throw new UsageError(`${flag}: invalid duration "${v}" (expected e.g. 5s, 500ms, 1m30s; at least 1ms)`);
  }
  return ms;
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
};

/**
 * A memory size as runc reads it (docker/go-units RAMInBytes): a number with an optional binary
 * suffix k, m, g, t, p (any case, optionally followed by "b" or "ib": 32m, 32MB, 32MiB, 1.5g), or -1
 * for unlimited.
 */
export function parseBytes(flag: string, v: string): number {
  if (v === '-1') return -1;
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp]?)(?:i?b)?$/i.exec(v);
  const n = m ? Math.floor(Number(m[1]) * (BYTE_UNITS[(m[2] as string).toLowerCase()] ?? Number.NaN)) : NaN;
  if (!m || !Number.isSafeInteger(n)) {
    throw new UsageError(
      `${flag}: invalid size "${v}" (expected bytes with an optional k, m, g, t suffix, e.g. 32m, or -1 for unlimited)`,
    );
  }
  return n;
}

function parseInteger(flag: string, v: string, signed: boolean): number {
  const ok = signed ? /^-?\d+$/.test(v) : /^\d+$/.test(v);
  const n = Number(v);
  if (!ok || !Number.isSafeInteger(n)) {
    throw new UsageError(`${flag}: expected ${signed ? 'an integer' : 'a non-negative integer'}, got "${v}"`);
  }
  return n;
}

const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

interface UpdateFlags {
  resources?: string;
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  kernelMemory?: string;
  kernelMemoryTcp?: string;
  cpuShares?: string;
  cpuShare?: string;
  cpuQuota?: string;
  cpuPeriod?: string;
  cpuBurst?: string;
  cpuRtPeriod?: string;
  cpuRtRuntime?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  blkioWeight?: string;
  cpuIdle?: string;
}

type Obj = Record<string, unknown>;

function section(r: Obj, key: string): Obj {
  const cur = r[key];
  if (typeof cur === 'object' && cur !== null && !Array.isArray(cur)) return cur as Obj;
  const fresh: Obj = {};
  r[key] = fresh;
  return fresh;
}

/** The resources of `nsinit update`: the -r document (validated), then the flags on top. */
export function updateResources(f: UpdateFlags, stdin: () => string): Obj {
  let r: Obj = {};
  if (f.resources !== undefined) {
    const file = f.resources;
    const source = file === '-' ? '--resources (stdin)' : file;
    let text: string;
    try {
      text = file === '-' ? stdin() : readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`--resources: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    r = structuredClone(parseResourcesJSON(text, source)) as Obj;
  }
  const bytes: [keyof UpdateFlags, string, string][] = [
    ['memory', '--memory', 'limit'],
    ['memorySwap', '--memory-swap', 'swap'],
    ['memoryReservation', '--memory-reservation', 'reservation'],
    ['kernelMemory', '--kernel-memory', 'kernel'],
    ['kernelMemoryTcp', '--kernel-memory-tcp', 'kernelTCP'],
  ];
  for (const [k, flag, field] of bytes) {
    const v = f[k];
    if (v !== undefined) section(r, 'memory')[field] = parseBytes(flag, v);
  }
  if (f.cpuShares !== undefined && f.cpuShare !== undefined) {
    throw new UsageError('--cpu-shares: give either --cpu-shares or --cpu-share, not both');
  }
  const ints: [keyof UpdateFlags, string, string, boolean][] = [
    ['cpuShares', '--cpu-shares', 'shares', false],
    ['cpuShare', '--cpu-share', 'shares', false],
    ['cpuQuota', '--cpu-quota', 'quota', true],
    ['cpuPeriod', '--cpu-period', 'period', false],
    ['cpuBurst', '--cpu-burst', 'burst', false],
    ['cpuRtPeriod', '--cpu-rt-period', 'realtimePeriod', false],
    ['cpuRtRuntime', '--cpu-rt-runtime', 'realtimeRuntime', true],
  ];
  for (const [k, flag, field, signed] of ints) {
    const v = f[k];
    if (v === undefined) continue;
    const n = parseInteger(flag, v, signed);
    if (signed && n < -1 && field === 'quota') {
      throw new UsageError(`${flag}: expected -1 (unlimited) or a non-negative integer, got "${v}"`);
    }
    section(r, 'cpu')[field] = n;
  }
  if (f.cpuIdle !== undefined) {
    if (f.cpuIdle !== '0' && f.cpuIdle !== '1') {
      throw new UsageError(`--cpu-idle: expected 0 or 1, got "${f.cpuIdle}"`);
    }
    section(r, 'cpu')['idle'] = Number(f.cpuIdle);
  }
  for (const [v, flag, field] of [
    [f.cpusetCpus, '--cpuset-cpus', 'cpus'],
    [f.cpusetMems, '--cpuset-mems', 'mems'],
  ] as const) {
    if (v === undefined) continue;
    if (!CPU_LIST.test(v)) throw new UsageError(`${flag}: expected a list such as 0-2,4, got "${v}"`);
    section(r, 'cpu')[field] = v;
  }
  if (f.pidsLimit !== undefined) {
    const n = parseInteger('--pids-limit', f.pidsLimit, true);
    section(r, 'pids')['limit'] = n;
  }
  if (f.blkioWeight !== undefined) {
    const n = parseInteger('--blkio-weight', f.blkioWeight, false);
    if (n !== 0 && (n < 10 || n > 1000)) {
      throw new UsageError(`--blkio-weight: expected 10..1000 (or 0: unchanged), got "${f.blkioWeight}"`);
    }
    if (n !== 0) section(r, 'blockIO')['weight'] = n;
  }
  return r;
}

// ---------------------------------------------------------------------------
// stats view

/** Binary size with 4 significant digits, as docker prints it ("1.953MiB"). */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

interface Sample {
  /** process.hrtime.bigint() when taken. */
  at: bigint;
  stats?: CgroupStats;
  /** Status when the container could be loaded. */
  status?: string;
}

function sample(id: string, root: string, first: boolean): Sample {
  const at = process.hrtime.bigint();
  let c: Container;
  try {
    c = Container.load(id, root);
  } catch (e) {
    if (first) throw e;
    return { at };
  }
  const status = c.state().status;
  try {
    return { at, status, stats: c.stats() };
  } catch (e) {
    // The first sample reports what is wrong (no cgroup: rootless); later ones show "--".
    if (first && isContainerError(e) && e.code === 'Unsupported') throw e;
    return { at, status };
  }
}

/** Memory usage as docker counts it: usage minus inactive page cache. */
function memUsage(m: NonNullable<CgroupStats['memory']>): number {
  const inactive = m.stats['total_inactive_file'] ?? m.stats['inactive_file'] ?? 0;
  return inactive < m.usage ? m.usage - inactive : m.usage;
}

/** One row: CONTAINER ID, CPU %, MEM USAGE / LIMIT, MEM %, PIDS. */
export function statsRow(id: string, prev: Sample | undefined, cur: Sample, hostMem: number): string[] {
  const s = cur.stats;
  let cpu = '--';
  const t0 = prev?.stats?.cpu?.usage.total;
  const t1 = s?.cpu?.usage.total;
  if (prev && t0 !== undefined && t1 !== undefined && cur.at > prev.at) {
    cpu = `${(((t1 - t0) / Number(cur.at - prev.at)) * 100).toFixed(2)}%`;
  }
  let mem = '-- / --';
  let memPct = '--';
  if (s?.memory) {
    const used = memUsage(s.memory);
    const limit = Math.min(s.memory.limit ?? hostMem, hostMem);
    mem = `${humanBytes(used)} / ${humanBytes(limit)}`;
    memPct = limit > 0 ? `${((used / limit) * 100).toFixed(2)}%` : '--';
  }
  const pids = s?.pids ? String(s.pids.current) : '--';
  return [id, cpu, mem, memPct, pids];
}

const HEADER = ['CONTAINER ID', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'PIDS'];

function formatRow(r: readonly string[], widths: readonly number[]): string {
  return r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join('');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function statsView(ids: string[], root: string, interval: number, stream: boolean): Promise<void> {
  const hostMem = totalmem();
  let prev = ids.map((id) => sample(id, root, true));
  const tty = process.stdout.isTTY === true;
  const widths = [Math.max(HEADER[0]?.length ?? 0, ...ids.map((i) => i.length)), 7, 23, 7, 5];
  let headerShown = false;
  let stop = false;
  const onSig = () => {
    stop = true;
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  try {
    for (;;) {
      await sleep(interval);
      if (stop) return;
      const cur = ids.map((id) => sample(id, root, false));
      const rows = ids.map((id, i) => formatRow(statsRow(id, prev[i], cur[i] as Sample, hostMem), widths));
      prev = cur;
      let out = '';
      if (tty && stream) out += '\x1b[2J\x1b[H';
      if (tty || !headerShown) out += `${formatRow(HEADER, widths)}\n`;
      headerShown = true;
      out += `${rows.join('\n')}\n`;
      process.stdout.write(out);
      if (!stream || stop) return;
      // Nothing left to watch: every container stopped or deleted.
      if (cur.every((s) => s.status === undefined || s.status === 'stopped')) return;
    }
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}

// ---------------------------------------------------------------------------
// events

async function eventsStream(id: string, root: string, interval: number): Promise<void> {
  const c = Container.load(id, root);
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  const write = (line: string) => process.stdout.write(`${line}\n`);
  let timer: NodeJS.Timeout | undefined;
  let grace: NodeJS.Timeout | undefined;
  const tick = () => {
    let status: string;
    try {
      status = Container.load(id, root).state().status;
    } catch {
      ac.abort(); // deleted
      return;
    }
    if (status === 'stopped') {
      // Let a last OOM notification (the OOM killer may have ended the init) be reported first.
      clearInterval(timer);
      grace = setTimeout(() => ac.abort(), 300);
      return;
    }
    try {
      write(runcEventJSON(id, c.stats()));
    } catch {
      ac.abort(); // the cgroup is gone
    }
  };
  try {
    const events = c.events({ signal: ac.signal });
    tick();
    timer = setInterval(tick, interval);
    for await (const _e of events) write(JSON.stringify({ type: 'oom', id }));
  } finally {
    clearInterval(timer);
    clearTimeout(grace);
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}

function notRunning(id: string, status: string): ContainerError {
  return new ContainerError('InvalidState', `container "${id}" is not running (it is ${status})`, { id });
}

export function register(program: Command): void {
  program
    .command('pause')
    .description('suspend all processes inside the container (cgroup freezer)')
    .argument('<container-id>')
    .action((id: string, _f: unknown, cmd: Command) => {
      Container.load(id, context(cmd).root).pause();
    });

  program
    .command('resume')
    .description('resume all processes of a paused container')
    .argument('<container-id>')
    .action((id: string, _f: unknown, cmd: Command) => {
      Container.load(id, context(cmd).root).resume();
    });

  program
    .command('events')
    .description(
      'display container events (OOM notifications, and resource usage statistics every interval) as JSON lines',
    )
    .option('--interval <duration>', 'the stats collection interval', '5s')
    .option('--stats', "print the container's stats once and exit")
    .argument('<container-id>')
    .action(async (id: string, f: { interval: string; stats?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const interval = parseDuration('--interval', f.interval);
      const c = Container.load(id, ctx.root);
      const status = c.state().status;
      if (status === 'stopped') throw notRunning(id, status);
      if (f.stats) {
        process.stdout.write(`${runcEventJSON(id, c.stats())}\n`);
        return;
      }
      await eventsStream(id, ctx.root, interval);
    });

  program
    .command('stats')
    .description(
      "display a live view of the containers' resource usage (CPU %, memory, pids), like docker stats",
    )
    .option('--no-stream', 'print one sample and exit')
    .option('--interval <duration>', 'the refresh interval', '1s')
    .argument('<container-id...>')
    .action(async (ids: string[], f: { stream: boolean; interval: string }, cmd: Command) => {
      const ctx = context(cmd);
      const interval = parseDuration('--interval', f.interval);
      await statsView(ids, ctx.root, interval, f.stream !== false);
    });

  program
    .command('update')
    .description('update the resource limits of a running container')
    .option('-r, --resources <file>', "JSON file of OCI linux.resources to apply ('-' reads stdin)")
    .option('--memory <bytes>', 'memory limit (e.g. 64m; -1: unlimited)')
    .option('--memory-swap <bytes>', 'memory + swap limit (-1: unlimited swap)')
    .option('--memory-reservation <bytes>', 'memory soft limit')
    .option('--kernel-memory <bytes>', 'kernel memory limit (obsolete; ignored by Linux >= 6.1)')
    .option('--kernel-memory-tcp <bytes>', 'kernel TCP buffer limit (obsolete)')
    .option('--cpu-shares <n>', 'CPU shares (relative weight)')
    .option('--cpu-share <n>', "CPU shares (runc's spelling)")
    .option('--cpu-quota <us>', 'CFS quota in microseconds per period (-1: unlimited)')
    .option('--cpu-period <us>', 'CFS period in microseconds')
    .option('--cpu-burst <us>', 'CFS burst in microseconds')
    .option('--cpu-rt-period <us>', 'realtime period in microseconds')
    .option('--cpu-rt-runtime <us>', 'realtime runtime in microseconds per period')
    .option('--cpuset-cpus <list>', 'CPUs to use (e.g. 0-2,4)')
    .option('--cpuset-mems <list>', 'memory nodes to use')
    .option('--pids-limit <n>', 'maximum number of tasks (0 or -1: unlimited)')
    .option('--blkio-weight <n>', 'block I/O weight, 10..1000')
    .option('--cpu-idle <0|1>', '1: SCHED_IDLE for the whole cgroup')
    .argument('<container-id>')
    .action((id: string, f: UpdateFlags, cmd: Command) => {
      const ctx = context(cmd);
      const r = updateResources(f, () => readFileSync(0, 'utf8'));
      if (Object.keys(r).length === 0) {
        throw new UsageError(
          'update: nothing to change (give --resources or a resource flag such as --memory)',
        );
      }
      const result = Container.load(id, ctx.root).update(r as LinuxResources);
      for (const s of result.skipped) ctx.log.warn(`not enforced: ${s.resource}: ${s.reason}`);
    });
}
