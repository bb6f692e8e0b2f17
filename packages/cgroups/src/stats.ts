/**
 * Statistics in one typed shape for cgroup v1 and v2, read the way runc's fs/fs2 drivers read them,
 * and their conversion to the JSON of `runc events --stats`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupError } from './errors.js';
import { parseKeyed, readFileIfExists } from './fsutil.js';

/** One line of a blkio/io statistic. */
export interface BlkioEntry {
  major: number;
  minor: number;
  /** `Read`, `Write`, `Sync`, `Async`, `Discard`, `Total` (v1), or `Read`/`Write` (v2). */
  op: string;
  value: number;
}

/** A memory counter with its limit. Limits are `null` when unlimited. */
export interface MemoryEntryStats {
  usage: number;
  /** Peak usage (v1 `max_usage_in_bytes`, v2 `memory.peak`; `0` when the kernel has none). */
  maxUsage: number;
  limit: number | null;
  /** v1 `failcnt`; v2 the `max` count of `memory.events`. */
  failcnt: number;
}

/** Everything {@link CgroupManager.stats} reports; sections are absent when their controller is. */
export interface CgroupStats {
  /** 1: read from v1 hierarchies (legacy, hybrid); 2: from a v2 directory. */
  version: 1 | 2;
  cpu?: {
    /** Nanoseconds. `perCpu*` are v1 only (empty on v2). */
    usage: {
      total: number;
      perCpu: number[];
      perCpuUser: number[];
      perCpuSystem: number[];
      user: number;
      system: number;
    };
    /** `throttledTime` in nanoseconds. */
    throttling: { periods: number; throttledPeriods: number; throttledTime: number };
  };
  /** v1 only. */
  cpuset?: {
    cpus: number[];
    mems: number[];
    cpuExclusive: number;
    memHardwall: number;
    memExclusive: number;
    memoryMigrate: number;
    memorySpreadPage: number;
    memorySpreadSlab: number;
    memoryPressure: number;
    schedLoadBalance: number;
    schedRelaxDomainLevel: number;
  };
  memory?: MemoryEntryStats & {
    /** Page cache: v1 `cache`, v2 `file` of memory.stat. */
    cache: number;
    /** Anonymous memory: v1 `rss`, v2 `anon` of memory.stat. */
    rss: number;
    /**
     * Memory + swap, like OCI `memory.swap` and runc: v1 `memory.memsw.*`; v2 `memory.swap.current
     * + memory.current` with limit `memory.swap.max + memory.max`. Zero without swap accounting.
     */
    swap: MemoryEntryStats;
    /** v1 `memory.kmem.*` (absent on v2). */
    kernel?: MemoryEntryStats;
    /** v1 `memory.kmem.tcp.*` (absent on v2). */
    kernelTCP?: MemoryEntryStats;
    /** v1 `memory.use_hierarchy`; always true on v2. */
    useHierarchy: boolean;
    /** The whole `memory.stat`. */
    stats: Record<string, number>;
  };
  pids?: { current: number; limit: number | null };
  blkio?: { ioServiceBytesRecursive: BlkioEntry[]; ioServicedRecursive: BlkioEntry[] };
  /** Keyed by page size, e.g. `"2MB"`. `maxUsage` is v1 only. */
  hugetlb: Record<string, { usage: number; maxUsage: number; failcnt: number }>;
}

function num(file: string, text: string): number {
  const t = text.trim();
  if (t === 'max') return Number.POSITIVE_INFINITY;
  const n = Number(t);
  if (t === '' || !Number.isFinite(n)) {
    throw new CgroupError('System', 'read', `read ${file}: unexpected content "${t}"`, { path: file });
  }
  return n;
}

/** A numeric file, or `undefined` when it does not exist. `max` → Infinity. */
function readNum(dir: string, file: string): number | undefined {
  const p = join(dir, file);
  const text = readFileIfExists(p);
  return text === undefined ? undefined : num(p, text);
}

/** v1 limits at or above 2^62 and v2 `max` are "unlimited". */
function limitOf(n: number | undefined): number | null {
  if (n === undefined || !Number.isFinite(n) || n >= 2 ** 62) return null;
  return n;
}

function keyedNumbers(dir: string, file: string): Record<string, number> | undefined {
  const p = join(dir, file);
  const text = readFileIfExists(p);
  if (text === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const [k, v] of parseKeyed(text)) {
    const n = Number(v);
    if (Number.isFinite(n)) out[k] = n;
  }
  return out;
}

function numberList(text: string | undefined): number[] {
  return (text ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** `"0-2,5"` → `[0, 1, 2, 5]`. */
export function parseList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    for (let i = a; i <= (b ?? a); i++) out.push(i);
  }
  return out;
}

const ZERO_ENTRY: MemoryEntryStats = { usage: 0, maxUsage: 0, limit: null, failcnt: 0 };

function memoryEntryV1(dir: string, prefix: string): MemoryEntryStats | undefined {
  const usage = readNum(dir, `${prefix}.usage_in_bytes`);
  if (usage === undefined) return undefined;
  return {
    usage,
    maxUsage: readNum(dir, `${prefix}.max_usage_in_bytes`) ?? 0,
    limit: limitOf(readNum(dir, `${prefix}.limit_in_bytes`)),
    failcnt: readNum(dir, `${prefix}.failcnt`) ?? 0,
  };
}

/** Parse a v1 blkio statistic (`8:0 Read 4096` lines, `Total N` skipped). */
export function parseBlkioV1(text: string): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/[\s:]+/);
    if (f.length < 3) continue;
    const [major, minor] = [Number(f[0]), Number(f[1])];
    if (!Number.isInteger(major) || !Number.isInteger(minor)) continue;
    const op = f.length >= 4 ? (f[2] ?? '') : '';
    out.push({ major, minor, op, value: Number(f[f.length >= 4 ? 3 : 2]) });
  }
  return out;
}

/** Parse v2 `io.stat` into v1-style Read/Write tables (as runc does). */
export function parseIoStatV2(text: string): NonNullable<CgroupStats['blkio']> {
  const out: NonNullable<CgroupStats['blkio']> = { ioServiceBytesRecursive: [], ioServicedRecursive: [] };
  for (const line of text.split('\n')) {
    const [dev, ...kvs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (m === null) continue;
    const major = Number(m[1]);
    const minor = Number(m[2]);
    for (const kv of kvs) {
      const [k, v] = kv.split('=');
      const value = Number(v);
      if (!Number.isFinite(value)) continue;
      if (k === 'rbytes' || k === 'wbytes') {
        out.ioServiceBytesRecursive.push({ major, minor, op: k === 'rbytes' ? 'Read' : 'Write', value });
      } else if (k === 'rios' || k === 'wios') {
        out.ioServicedRecursive.push({ major, minor, op: k === 'rios' ? 'Read' : 'Write', value });
      }
    }
  }
  return out;
}

/** Page sizes with a hugetlb file in `dir`, from names such as `hugetlb.2MB.limit_in_bytes`. */
function hugePageSizes(dir: string, suffix: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const re = new RegExp(`^hugetlb\\.([0-9]+[KMGTP]B)\\.${suffix.replace('.', '\\.')}$`);
  return names.flatMap((n) => re.exec(n)?.[1] ?? []);
}

/** Statistics from cgroup v1 directories (controller → dir). */
export function statsV1(dirs: Readonly<Record<string, string>>): CgroupStats {
  const s: CgroupStats = { version: 1, hugetlb: {} };
  const acct = dirs['cpuacct'];
  const cpu = dirs['cpu'];
  if ((acct !== undefined && existsSync(acct)) || (cpu !== undefined && existsSync(cpu))) {
    const usage = {
      total: 0,
      perCpu: [] as number[],
      perCpuUser: [] as number[],
      perCpuSystem: [] as number[],
      user: 0,
      system: 0,
    };
    if (acct !== undefined) {
      usage.total = readNum(acct, 'cpuacct.usage') ?? 0;
      usage.perCpu = numberList(readFileIfExists(join(acct, 'cpuacct.usage_percpu')));
      const user = readNum(acct, 'cpuacct.usage_user');
      const sys = readNum(acct, 'cpuacct.usage_sys');
      if (user !== undefined && sys !== undefined) {
        usage.user = user;
        usage.system = sys;
      } else {
        // USER_HZ ticks, 100 per second on Linux.
        const st = keyedNumbers(acct, 'cpuacct.stat') ?? {};
        usage.user = (st['user'] ?? 0) * 1e7;
        usage.system = (st['system'] ?? 0) * 1e7;
      }
      const all = readFileIfExists(join(acct, 'cpuacct.usage_all'));
      for (const line of (all ?? '').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 3) continue;
        usage.perCpuUser.push(Number(f[1]));
        usage.perCpuSystem.push(Number(f[2]));
      }
    }
    const st = (cpu === undefined ? undefined : keyedNumbers(cpu, 'cpu.stat')) ?? {};
    s.cpu = {
      usage,
      throttling: {
        periods: st['nr_periods'] ?? 0,
        throttledPeriods: st['nr_throttled'] ?? 0,
        throttledTime: st['throttled_time'] ?? 0,
      },
    };
  }
  const cs = dirs['cpuset'];
  if (cs !== undefined && existsSync(cs)) {
    const n = (f: string): number => readNum(cs, `cpuset.${f}`) ?? 0;
    s.cpuset = {
      cpus: parseList(readFileIfExists(join(cs, 'cpuset.cpus')) ?? ''),
      mems: parseList(readFileIfExists(join(cs, 'cpuset.mems')) ?? ''),
      cpuExclusive: n('cpu_exclusive'),
      memHardwall: n('mem_hardwall'),
      memExclusive: n('mem_exclusive'),
      memoryMigrate: n('memory_migrate'),
      memorySpreadPage: n('memory_spread_page'),
      memorySpreadSlab: n('memory_spread_slab'),
      memoryPressure: n('memory_pressure'),
      schedLoadBalance: n('sched_load_balance'),
      schedRelaxDomainLevel: n('sched_relax_domain_level'),
    };
  }
  const mem = dirs['memory'];
  const usage = mem === undefined ? undefined : memoryEntryV1(mem, 'memory');
  if (mem !== undefined && usage !== undefined) {
    const stats = keyedNumbers(mem, 'memory.stat') ?? {};
    const kernel = memoryEntryV1(mem, 'memory.kmem');
    const kernelTCP = memoryEntryV1(mem, 'memory.kmem.tcp');
    s.memory = {
      ...usage,
      cache: stats['cache'] ?? 0,
      rss: stats['rss'] ?? 0,
      swap: memoryEntryV1(mem, 'memory.memsw') ?? { ...ZERO_ENTRY },
      useHierarchy: readNum(mem, 'memory.use_hierarchy') === 1,
      stats,
    };
    if (kernel !== undefined) s.memory.kernel = kernel;
    if (kernelTCP !== undefined) s.memory.kernelTCP = kernelTCP;
  }
  const pids = dirs['pids'];
  const current = pids === undefined ? undefined : readNum(pids, 'pids.current');
  if (pids !== undefined && current !== undefined) {
    s.pids = { current, limit: limitOf(readNum(pids, 'pids.max')) };
  }
  const blkio = dirs['blkio'];
  if (blkio !== undefined && existsSync(blkio)) s.blkio = blkioV1(blkio);
  const huge = dirs['hugetlb'];
  if (huge !== undefined) {
    for (const size of hugePageSizes(huge, 'limit_in_bytes')) {
      const p = `hugetlb.${size}`;
      s.hugetlb[size] = {
        usage: readNum(huge, `${p}.usage_in_bytes`) ?? 0,
        maxUsage: readNum(huge, `${p}.max_usage_in_bytes`) ?? 0,
        failcnt: readNum(huge, `${p}.failcnt`) ?? 0,
      };
    }
  }
  return s;
}

/** The first group of files that has data, in runc's order: BFQ, CFQ, throttle recursive, throttle. */
function blkioV1(dir: string): NonNullable<CgroupStats['blkio']> {
  const groups: [string, string][] = [
    ['blkio.bfq.io_serviced_recursive', 'blkio.bfq.io_service_bytes_recursive'],
    ['blkio.io_serviced_recursive', 'blkio.io_service_bytes_recursive'],
    ['blkio.throttle.io_serviced_recursive', 'blkio.throttle.io_service_bytes_recursive'],
    ['blkio.throttle.io_serviced', 'blkio.throttle.io_service_bytes'],
  ];
  for (const [serviced, bytes] of groups) {
    const first = readFileIfExists(join(dir, serviced));
    if (first === undefined) continue;
    const ioServicedRecursive = parseBlkioV1(first);
    if (ioServicedRecursive.length === 0) continue;
    return {
      ioServicedRecursive,
      ioServiceBytesRecursive: parseBlkioV1(readFileIfExists(join(dir, bytes)) ?? ''),
    };
  }
  return { ioServiceBytesRecursive: [], ioServicedRecursive: [] };
}

/** Statistics from a cgroup v2 directory. */
export function statsV2(dir: string): CgroupStats {
  const s: CgroupStats = { version: 2, hugetlb: {} };
  const cpu = keyedNumbers(dir, 'cpu.stat');
  if (cpu !== undefined) {
    s.cpu = {
      usage: {
        total: (cpu['usage_usec'] ?? 0) * 1000,
        perCpu: [],
        perCpuUser: [],
        perCpuSystem: [],
        user: (cpu['user_usec'] ?? 0) * 1000,
        system: (cpu['system_usec'] ?? 0) * 1000,
      },
      throttling: {
        periods: cpu['nr_periods'] ?? 0,
        throttledPeriods: cpu['nr_throttled'] ?? 0,
        throttledTime: (cpu['throttled_usec'] ?? 0) * 1000,
      },
    };
  }
  const current = readNum(dir, 'memory.current');
  if (current !== undefined) {
    const stats = keyedNumbers(dir, 'memory.stat') ?? {};
    const limit = limitOf(readNum(dir, 'memory.max'));
    const events = keyedNumbers(dir, 'memory.events') ?? {};
    const swapCurrent = readNum(dir, 'memory.swap.current');
    const swapMax = limitOf(readNum(dir, 'memory.swap.max'));
    s.memory = {
      usage: current,
      maxUsage: readNum(dir, 'memory.peak') ?? 0,
      limit,
      failcnt: events['max'] ?? 0,
      cache: stats['file'] ?? 0,
      rss: stats['anon'] ?? 0,
      swap:
        swapCurrent === undefined
          ? { ...ZERO_ENTRY }
          : {
              usage: swapCurrent + current,
              maxUsage: 0,
              limit: swapMax === null || limit === null ? null : swapMax + limit,
              failcnt: keyedNumbers(dir, 'memory.swap.events')?.['max'] ?? 0,
            },
      useHierarchy: true,
      stats,
    };
  }
  const pids = readNum(dir, 'pids.current');
  if (pids !== undefined) s.pids = { current: pids, limit: limitOf(readNum(dir, 'pids.max')) };
  const io = readFileIfExists(join(dir, 'io.stat'));
  if (io !== undefined) s.blkio = parseIoStatV2(io);
  for (const size of hugePageSizes(dir, 'max')) {
    const p = `hugetlb.${size}`;
    s.hugetlb[size] = {
      usage: readNum(dir, `${p}.rsvd.current`) ?? readNum(dir, `${p}.current`) ?? 0,
      maxUsage: 0,
      failcnt: keyedNumbers(dir, `${p}.events`)?.['max'] ?? 0,
    };
  }
  return s;
}

/** A uint64 as runc prints it: a number, or a bigint when it does not fit a double exactly. */
export type U64 = number | bigint;

/** `runc events --stats` `data`, field for field (runc `types.Stats`, Go `omitempty`/`omitzero` applied). */
export interface RuncStats {
  cpu: {
    usage?: {
      total?: number;
      percpu?: number[];
      percpu_kernel?: number[];
      percpu_user?: number[];
      kernel: number;
      user: number;
    };
    throttling?: { periods?: number; throttledPeriods?: number; throttledTime?: number };
  };
  cpuset: {
    cpus?: number[];
    cpu_exclusive: number;
    mems?: number[];
    mem_hardwall: number;
    mem_exclusive: number;
    memory_migrate: number;
    memory_spread_page: number;
    memory_spread_slab: number;
    memory_pressure: number;
    sched_load_balance: number;
    sched_relax_domain_level: number;
  };
  memory: {
    cache?: number;
    usage?: RuncMemoryEntry;
    swap?: RuncMemoryEntry;
    kernel?: RuncMemoryEntry;
    kernelTCP?: RuncMemoryEntry;
    raw?: Record<string, number>;
  };
  pids: { current?: number; limit?: number };
  blkio: {
    ioServiceBytesRecursive?: RuncBlkioEntry[];
    ioServicedRecursive?: RuncBlkioEntry[];
  };
  hugetlb: Record<string, { usage?: number; max?: number; failcnt: number }>;
  intel_rdt: Record<string, never>;
  network_interfaces: null;
}

export interface RuncMemoryEntry {
  limit: U64;
  usage?: number;
  max?: number;
  failcnt: number;
}

export interface RuncBlkioEntry {
  major?: number;
  minor?: number;
  op?: string;
  value?: number;
}

/** What runc prints for an unlimited limit: v1 the kernel's page-rounded 2^63-1 (4 KiB pages), v2 2^64-1. */
const RUNC_UNLIMITED: Record<1 | 2, bigint> = { 1: 9223372036854771712n, 2: 18446744073709551615n };

/** Copy `obj` without the keys whose value is `0`, `''`, an empty array or undefined (Go `omitempty`). */
function omitEmpty<T extends object>(obj: T, keys: readonly (keyof T)[]): T {
  const out = { ...obj };
  for (const k of keys) {
    const v = out[k];
    if (v === undefined || v === 0 || v === '' || (Array.isArray(v) && v.length === 0)) delete out[k];
  }
  return out;
}

/** Whether every value is zero, empty or undefined (Go `omitzero` on a struct). */
function isZero(obj: object): boolean {
  return Object.values(obj).every(
    (v) => v === undefined || v === 0 || v === 0n || v === '' || (Array.isArray(v) && v.length === 0),
  );
}

function runcMemoryEntry(e: MemoryEntryStats | undefined, version: 1 | 2): RuncMemoryEntry | undefined {
  if (e === undefined) return undefined;
  const entry = omitEmpty<RuncMemoryEntry>(
    { limit: e.limit ?? RUNC_UNLIMITED[version], usage: e.usage, max: e.maxUsage, failcnt: e.failcnt },
    ['usage', 'max'],
  );
  return entry;
}

/**
 * Convert {@link CgroupStats} to the `data` of `runc events --stats` (runc's `types.Stats`), with
 * runc's field names and omissions. Unlimited limits become runc's numbers (bigint: 2^64-1 on v2,
 * 2^63-4096 on v1), so print it with {@link runcStatsJSON} or {@link runcEventJSON}.
 *
 * | here | runc JSON |
 * | --- | --- |
 * | `cpu.usage.total`, `perCpu`, `perCpuSystem`, `perCpuUser`, `system`, `user` | `cpu.usage.total`, `percpu`, `percpu_kernel`, `percpu_user`, `kernel`, `user` |
 * | `cpu.throttling.*` | `cpu.throttling.periods`, `throttledPeriods`, `throttledTime` |
 * | `memory.usage`, `maxUsage`, `limit`, `failcnt` | `memory.usage.usage`, `.max`, `.limit`, `.failcnt` |
 * | `memory.swap` (memory+swap), `kernel`, `kernelTCP` | `memory.swap`, `memory.kernel`, `memory.kernelTCP` |
 * | `memory.cache`, `memory.stats` | `memory.cache`, `memory.raw` |
 * | `pids.current`, `pids.limit` (null → omitted) | `pids.current`, `pids.limit` |
 * | `blkio.*` entries `{major, minor, op, value}` | `blkio.ioServiceBytesRecursive`, `ioServicedRecursive` |
 * | `hugetlb[size].usage`, `maxUsage`, `failcnt` | `hugetlb[size].usage`, `.max`, `.failcnt` |
 */
export function toRuncStats(s: CgroupStats): RuncStats {
  const u = s.cpu?.usage;
  const usage = omitEmpty(
    {
      total: u?.total ?? 0,
      percpu: u?.perCpu ?? [],
      percpu_kernel: u?.perCpuSystem ?? [],
      percpu_user: u?.perCpuUser ?? [],
      kernel: u?.system ?? 0,
      user: u?.user ?? 0,
    },
    ['total', 'percpu', 'percpu_kernel', 'percpu_user'],
  );
  const t = s.cpu?.throttling;
  const throttling = omitEmpty(
    {
      periods: t?.periods ?? 0,
      throttledPeriods: t?.throttledPeriods ?? 0,
      throttledTime: t?.throttledTime ?? 0,
    },
    ['periods', 'throttledPeriods', 'throttledTime'],
  );
  const cpu: RuncStats['cpu'] = {};
  if (!isZero(usage)) cpu.usage = usage;
  if (!isZero(throttling)) cpu.throttling = throttling;

  const c = s.cpuset;
  const cpuset = omitEmpty<RuncStats['cpuset']>(
    {
      cpus: c?.cpus ?? [],
      cpu_exclusive: c?.cpuExclusive ?? 0,
      mems: c?.mems ?? [],
      mem_hardwall: c?.memHardwall ?? 0,
      mem_exclusive: c?.memExclusive ?? 0,
      memory_migrate: c?.memoryMigrate ?? 0,
      memory_spread_page: c?.memorySpreadPage ?? 0,
      memory_spread_slab: c?.memorySpreadSlab ?? 0,
      memory_pressure: c?.memoryPressure ?? 0,
      sched_load_balance: c?.schedLoadBalance ?? 0,
      sched_relax_domain_level: c?.schedRelaxDomainLevel ?? 0,
    },
    ['cpus', 'mems'],
  );

  const m = s.memory;
  const memory: RuncStats['memory'] = {};
  if (m !== undefined) {
    if (m.cache !== 0) memory.cache = m.cache;
    const entries: [keyof RuncStats['memory'], MemoryEntryStats | undefined][] = [
      ['usage', m],
      ['swap', m.swap],
      ['kernel', m.kernel],
      ['kernelTCP', m.kernelTCP],
    ];
    for (const [k, e] of entries) {
      const entry = runcMemoryEntry(e, s.version);
      if (entry !== undefined && !isZero(entry)) (memory as Record<string, unknown>)[k] = entry;
    }
    if (Object.keys(m.stats).length > 0) memory.raw = { ...m.stats };
  }

  const pids = omitEmpty({ current: s.pids?.current ?? 0, limit: s.pids?.limit ?? 0 }, ['current', 'limit']);
  const blkioEntry = (e: BlkioEntry): RuncBlkioEntry =>
    omitEmpty<RuncBlkioEntry>({ major: e.major, minor: e.minor, op: e.op, value: e.value }, [
      'major',
      'minor',
      'op',
      'value',
    ]);
  const blkio: RuncStats['blkio'] = {};
  const bytes = s.blkio?.ioServiceBytesRecursive ?? [];
  const ios = s.blkio?.ioServicedRecursive ?? [];
  if (bytes.length > 0) blkio.ioServiceBytesRecursive = bytes.map(blkioEntry);
  if (ios.length > 0) blkio.ioServicedRecursive = ios.map(blkioEntry);

  const hugetlb: RuncStats['hugetlb'] = {};
  for (const [size, h] of Object.entries(s.hugetlb)) {
    hugetlb[size] = omitEmpty({ usage: h.usage, max: h.maxUsage, failcnt: h.failcnt }, ['usage', 'max']);
  }
  return { cpu, cpuset, memory, pids, blkio, hugetlb, intel_rdt: {}, network_interfaces: null };
}

/** JSON text with bigints printed as plain integers (as Go prints uint64). */
export function runcStatsJSON(value: unknown): string {
  const marked = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000big:${v}` : v));
  return marked.replace(/"\\u0000big:(\d+)"/g, '$1');
}

/** One line of `runc events --stats`: `{"type":"stats","id":"<id>","data":{...}}`. */
export function runcEventJSON(id: string, s: CgroupStats): string {
  return runcStatsJSON({ type: 'stats', id, data: toRuncStats(s) });
}
