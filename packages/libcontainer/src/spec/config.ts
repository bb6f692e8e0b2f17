/**
 * Zod schema of the OCI runtime-spec (v1.2 / v1.3) `config.json`, Linux parts.
 *
 * Follows `schema/config-schema.json`, `config-linux.json`, `defs*.json` and
 * `specs-go/config.go` of opencontainers/runtime-spec. Objects are *loose*:
 * unknown properties are kept as they are (the spec requires runtimes to ignore
 * unknown properties), but known properties with a wrong type or an invalid
 * value are errors. Keys are declared in the Go structs' order, so a parsed
 * config serialises with the same key order as runc's.
 *
 * Error messages are produced by the error map in `issues.ts`; checks that
 * need a specific wording carry their own message here.
 */
import * as z from 'zod/mini';
import { integer, loose, showValue as show } from './schema-helpers.js';

// ---------------------------------------------------------------------------
// numbers

const U64_MAX = 2 ** 64; // 18446744073709551615 as a double
const I64_MIN = -(2 ** 63);
const I64_MAX = 2 ** 63;

const uint16 = integer(0, 0xffff);
const uint32 = integer(0, 0xffffffff);
const int32 = integer(-0x80000000, 0x7fffffff);
const uint64 = integer(0, U64_MAX);
const int64 = integer(I64_MIN, I64_MAX);
/** A memory-like int64 where -1 means "unlimited"; other negatives are rejected. */
const limit64 = integer(-1, I64_MAX);

/** A string matching `re`; on mismatch: `invalid value "x" (expected <what>)`. */
function pattern(re: RegExp, what: string) {
  return z
    .string()
    .check(z.regex(re, { error: (iss) => `invalid value ${show(iss.input)} (expected ${what})` }));
}

/** A string that must be an absolute path (start with `/`). */
function absolutePath(what = 'an absolute path') {
  return z.string().check(
    z.refine((p: string) => p.startsWith('/'), {
      error: (iss) => `must be ${what}, got ${show(iss.input)}`,
    }),
  );
}

const stringArray = z.array(z.string());
const stringMap = z.record(z.string(), z.string());

// ---------------------------------------------------------------------------
// enums

/** Namespace types, in the order they are listed in error messages. */
export const NAMESPACE_TYPES = ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time'] as const;

export const SECCOMP_ACTIONS = [
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
] as const;

export const SECCOMP_OPERATORS = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
] as const;

export const SECCOMP_ARCHES = [
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
] as const;

export const SECCOMP_FLAGS = [
  'SECCOMP_FILTER_FLAG_TSYNC',
  'SECCOMP_FILTER_FLAG_LOG',
  'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
  'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
] as const;

/** The spec lists the first four; runc also accepts the recursive variants. */
export const ROOTFS_PROPAGATIONS = [
  'private',
  'shared',
  'slave',
  'unbindable',
  'rprivate',
  'rshared',
  'rslave',
  'runbindable',
] as const;

export const SCHEDULER_POLICIES = [
  'SCHED_OTHER',
  'SCHED_FIFO',
  'SCHED_RR',
  'SCHED_BATCH',
  'SCHED_ISO',
  'SCHED_IDLE',
  'SCHED_DEADLINE',
] as const;

export const SCHEDULER_FLAGS = [
  'SCHED_FLAG_RESET_ON_FORK',
  'SCHED_FLAG_RECLAIM',
  'SCHED_FLAG_DL_OVERRUN',
  'SCHED_FLAG_KEEP_POLICY',
  'SCHED_FLAG_KEEP_PARAMS',
  'SCHED_FLAG_UTIL_CLAMP_MIN',
  'SCHED_FLAG_UTIL_CLAMP_MAX',
] as const;

export const IO_PRIORITY_CLASSES = ['IOPRIO_CLASS_RT', 'IOPRIO_CLASS_BE', 'IOPRIO_CLASS_IDLE'] as const;

export const MEMORY_POLICY_MODES = [
  'MPOL_DEFAULT',
  'MPOL_BIND',
  'MPOL_INTERLEAVE',
  'MPOL_WEIGHTED_INTERLEAVE',
  'MPOL_PREFERRED',
  'MPOL_PREFERRED_MANY',
  'MPOL_LOCAL',
] as const;

export const MEMORY_POLICY_FLAGS = [
  'MPOL_F_NUMA_BALANCING',
  'MPOL_F_RELATIVE_NODES',
  'MPOL_F_STATIC_NODES',
] as const;

// ---------------------------------------------------------------------------
// shared pieces

/** `CAP_` followed by upper-case letters and `_`; whether the name is known is checked elsewhere. */
export const capabilityNameSchema = pattern(/^CAP_[A-Z_]+$/, 'a capability name such as CAP_KILL');

export const idMappingSchema = loose({
  containerID: uint32,
  hostID: uint32,
  size: uint32,
});

export const hookSchema = loose({
  path: absolutePath(),
  args: z.optional(stringArray),
  env: z.optional(stringArray),
  /** Seconds; a positive integer. */
  timeout: z.optional(integer(1, Number.MAX_SAFE_INTEGER)),
});

export const hooksSchema = loose({
  /** Deprecated by the spec in favour of createRuntime/createContainer/startContainer. */
  prestart: z.optional(z.array(hookSchema)),
  createRuntime: z.optional(z.array(hookSchema)),
  createContainer: z.optional(z.array(hookSchema)),
  startContainer: z.optional(z.array(hookSchema)),
  poststart: z.optional(z.array(hookSchema)),
  poststop: z.optional(z.array(hookSchema)),
});

export const mountSchema = loose({
  destination: absolutePath(),
  type: z.optional(z.string()),
  source: z.optional(z.string()),
  options: z.optional(stringArray),
  uidMappings: z.optional(z.array(idMappingSchema)),
  gidMappings: z.optional(z.array(idMappingSchema)),
});

export const rootSchema = loose({
  path: z.string().check(z.minLength(1)),
  readonly: z.optional(z.boolean()),
});

// ---------------------------------------------------------------------------
// process

export const userSchema = loose({
  uid: uint32,
  gid: uint32,
  umask: z.optional(uint32),
  additionalGids: z.optional(z.array(uint32)),
  /** Windows only. */
  username: z.optional(z.string()),
});

export const capabilitiesSchema = loose({
  bounding: z.optional(z.array(capabilityNameSchema)),
  effective: z.optional(z.array(capabilityNameSchema)),
  inheritable: z.optional(z.array(capabilityNameSchema)),
  permitted: z.optional(z.array(capabilityNameSchema)),
  ambient: z.optional(z.array(capabilityNameSchema)),
});

export const rlimitSchema = loose({
  type: pattern(/^RLIMIT_[A-Z]+$/, 'a resource name such as RLIMIT_NOFILE'),
  hard: uint64,
  soft: uint64,
});

export const schedulerSchema = loose({
  policy: z.enum(SCHEDULER_POLICIES),
  nice: z.optional(int32),
  priority: z.optional(int32),
  flags: z.optional(z.array(z.enum(SCHEDULER_FLAGS))),
  runtime: z.optional(uint64),
  deadline: z.optional(uint64),
  period: z.optional(uint64),
});

export const ioPrioritySchema = loose({
  class: z.enum(IO_PRIORITY_CLASSES),
  /** 0 (highest) to 7 (lowest). */
  priority: integer(0, 7),
});

const cpuList = pattern(/^[0-9, -]*$/, 'a CPU list such as 0-3,7');

export const processSchema = loose({
  terminal: z.optional(z.boolean()),
  consoleSize: z.optional(loose({ height: uint32, width: uint32 })),
  /** REQUIRED by the spec (runc writes it always, as `{"uid":0,"gid":0}` for root). */
  user: userSchema,
  /** At least one entry is required to create a container (checked by `parseConfig`). */
  args: z.optional(stringArray),
  /** Windows only. */
  commandLine: z.optional(z.string()),
  env: z.optional(stringArray),
  cwd: absolutePath(),
  capabilities: z.optional(capabilitiesSchema),
  rlimits: z.optional(z.array(rlimitSchema)),
  noNewPrivileges: z.optional(z.boolean()),
  apparmorProfile: z.optional(z.string()),
  oomScoreAdj: z.optional(int32),
  scheduler: z.optional(schedulerSchema),
  selinuxLabel: z.optional(z.string()),
  ioPriority: z.optional(ioPrioritySchema),
  execCPUAffinity: z.optional(loose({ initial: z.optional(cpuList), final: z.optional(cpuList) })),
});

// ---------------------------------------------------------------------------
// linux

export const namespaceTypeSchema = z.enum(NAMESPACE_TYPES);

export const namespaceSchema = loose({
  type: namespaceTypeSchema,
  /** An existing namespace to join (e.g. `/proc/1234/ns/net`). `""` means "none", as in runc. */
  path: z.optional(
    z.string().check(
      z.refine((p: string) => p === '' || p.startsWith('/'), {
        error: (iss) => `must be an absolute path, got ${show(iss.input)}`,
      }),
    ),
  ),
});

export const deviceSchema = loose({
  path: absolutePath(),
  type: z.enum(['c', 'b', 'u', 'p']),
  /** Required unless type is `p` (checked by `parseConfig`). */
  major: z.optional(int64),
  minor: z.optional(int64),
  fileMode: z.optional(uint32),
  uid: z.optional(uint32),
  gid: z.optional(uint32),
});

export const deviceCgroupSchema = loose({
  allow: z.boolean(),
  type: z.optional(z.enum(['a', 'c', 'b'])),
  major: z.optional(int64),
  minor: z.optional(int64),
  access: z.optional(pattern(/^[rwm]*$/, 'a combination of r, w and m')),
});

export const memorySchema = loose({
  limit: z.optional(limit64),
  reservation: z.optional(limit64),
  swap: z.optional(limit64),
  kernel: z.optional(limit64),
  kernelTCP: z.optional(limit64),
  swappiness: z.optional(uint64),
  disableOOMKiller: z.optional(z.boolean()),
  useHierarchy: z.optional(z.boolean()),
  checkBeforeUpdate: z.optional(z.boolean()),
});

export const cpuSchema = loose({
  shares: z.optional(uint64),
  quota: z.optional(int64),
  burst: z.optional(uint64),
  period: z.optional(uint64),
  realtimeRuntime: z.optional(int64),
  realtimePeriod: z.optional(uint64),
  cpus: z.optional(z.string()),
  mems: z.optional(z.string()),
  idle: z.optional(int64),
});

export const pidsSchema = loose({
  /** Optional since runtime-spec 1.3; 0 or negative means unlimited. */
  limit: z.optional(int64),
});

const blockIODevice = { major: int64, minor: int64 };

export const weightDeviceSchema = loose({
  ...blockIODevice,
  weight: z.optional(uint16),
  leafWeight: z.optional(uint16),
});

export const throttleDeviceSchema = loose({
  ...blockIODevice,
  rate: uint64,
});

export const blockIOSchema = loose({
  weight: z.optional(uint16),
  leafWeight: z.optional(uint16),
  weightDevice: z.optional(z.array(weightDeviceSchema)),
  throttleReadBpsDevice: z.optional(z.array(throttleDeviceSchema)),
  throttleWriteBpsDevice: z.optional(z.array(throttleDeviceSchema)),
  throttleReadIOPSDevice: z.optional(z.array(throttleDeviceSchema)),
  throttleWriteIOPSDevice: z.optional(z.array(throttleDeviceSchema)),
});

export const hugepageLimitSchema = loose({
  pageSize: pattern(/^[1-9][0-9]*[KMG]B$/, 'a page size such as 2MB'),
  limit: uint64,
});

export const networkSchema = loose({
  classID: z.optional(uint32),
  priorities: z.optional(z.array(loose({ name: z.string(), priority: uint32 }))),
});

export const rdmaSchema = loose({
  hcaHandles: z.optional(uint32),
  hcaObjects: z.optional(uint32),
});

export const resourcesSchema = loose({
  devices: z.optional(z.array(deviceCgroupSchema)),
  memory: z.optional(memorySchema),
  cpu: z.optional(cpuSchema),
  pids: z.optional(pidsSchema),
  blockIO: z.optional(blockIOSchema),
  hugepageLimits: z.optional(z.array(hugepageLimitSchema)),
  network: z.optional(networkSchema),
  rdma: z.optional(z.record(z.string(), rdmaSchema)),
  unified: z.optional(stringMap),
});

export const seccompArgSchema = loose({
  index: uint32,
  value: uint64,
  valueTwo: z.optional(uint64),
  op: z.enum(SECCOMP_OPERATORS),
});

export const syscallSchema = loose({
  names: z.array(z.string()).check(z.minLength(1)),
  action: z.enum(SECCOMP_ACTIONS),
  errnoRet: z.optional(uint32),
  args: z.optional(z.array(seccompArgSchema)),
});

export const seccompSchema = loose({
  defaultAction: z.enum(SECCOMP_ACTIONS),
  defaultErrnoRet: z.optional(uint32),
  architectures: z.optional(z.array(z.enum(SECCOMP_ARCHES))),
  flags: z.optional(z.array(z.enum(SECCOMP_FLAGS))),
  listenerPath: z.optional(z.string()),
  listenerMetadata: z.optional(z.string()),
  syscalls: z.optional(z.array(syscallSchema)),
});

export const intelRdtSchema = loose({
  closID: z.optional(z.string()),
  schemata: z.optional(stringArray),
  l3CacheSchema: z.optional(z.string()),
  memBwSchema: z.optional(pattern(/^MB:[^\n]*$/, 'a schema starting with MB:')),
  /** runtime-spec 1.3. */
  enableMonitoring: z.optional(z.boolean()),
  /** runtime-spec 1.2 (replaced by enableMonitoring). */
  enableCMT: z.optional(z.boolean()),
  /** runtime-spec 1.2 (replaced by enableMonitoring). */
  enableMBM: z.optional(z.boolean()),
});

export const memoryPolicySchema = loose({
  mode: z.enum(MEMORY_POLICY_MODES),
  nodes: z.optional(z.string()),
  flags: z.optional(z.array(z.enum(MEMORY_POLICY_FLAGS))),
});

export const personalitySchema = loose({
  domain: z.enum(['LINUX', 'LINUX32']),
  flags: z.optional(stringArray),
});

export const timeOffsetSchema = loose({
  secs: z.optional(int64),
  nanosecs: z.optional(uint32),
});

export const linuxSchema = loose({
  uidMappings: z.optional(z.array(idMappingSchema)),
  gidMappings: z.optional(z.array(idMappingSchema)),
  sysctl: z.optional(stringMap),
  resources: z.optional(resourcesSchema),
  cgroupsPath: z.optional(z.string()),
  namespaces: z.optional(z.array(namespaceSchema)),
  devices: z.optional(z.array(deviceSchema)),
  netDevices: z.optional(z.record(z.string(), loose({ name: z.optional(z.string()) }))),
  seccomp: z.optional(seccompSchema),
  rootfsPropagation: z.optional(z.enum(ROOTFS_PROPAGATIONS)),
  maskedPaths: z.optional(stringArray),
  readonlyPaths: z.optional(stringArray),
  mountLabel: z.optional(z.string()),
  intelRdt: z.optional(intelRdtSchema),
  memoryPolicy: z.optional(memoryPolicySchema),
  personality: z.optional(personalitySchema),
  timeOffsets: z.optional(
    loose({
      boottime: z.optional(timeOffsetSchema),
      monotonic: z.optional(timeOffsetSchema),
    }),
  ),
});

// ---------------------------------------------------------------------------
// top level

export const ociVersionSchema = pattern(
  /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/,
  'a semantic version such as 1.2.0',
);

/**
 * The whole `config.json`. `process` is optional here as in the spec;
 * `parseConfig` requires it by default (it is needed to create a container).
 */
export const runtimeConfigSchema = loose({
  ociVersion: ociVersionSchema,
  process: z.optional(processSchema),
  root: rootSchema,
  hostname: z.optional(z.string()),
  domainname: z.optional(z.string()),
  mounts: z.optional(z.array(mountSchema)),
  hooks: z.optional(hooksSchema),
  annotations: z.optional(stringMap),
  linux: z.optional(linuxSchema),
});

// ---------------------------------------------------------------------------
// types

/**
 * A parsed OCI runtime configuration (`config.json`). Unknown properties
 * (extensions, other platforms' sections) are preserved at runtime but not
 * part of the type; read them with `(config as Record<string, unknown>)[key]`.
 */
export type RuntimeConfig = z.output<typeof runtimeConfigSchema>;

/** The container process: what to run, as whom, and with which privileges. */
export type Process = z.output<typeof processSchema>;

/** The user the process runs as, in the container's user namespace. */
export type User = z.output<typeof userSchema>;

/** Capability sets of the process; names look like `CAP_KILL`. */
export type Capabilities = z.output<typeof capabilitiesSchema>;

/** A POSIX resource limit (`setrlimit`), e.g. `{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }`. */
export type Rlimit = z.output<typeof rlimitSchema>;

/** A mount inside the container; `destination` is absolute. */
export type Mount = z.output<typeof mountSchema>;

/** The container's root filesystem; a relative `path` is relative to the bundle. */
export type Root = z.output<typeof rootSchema>;

/** A hook: an absolute `path`, its argv, environment and an optional timeout in seconds. */
export type Hook = z.output<typeof hookSchema>;

/** Lifecycle hooks, each run in order at its point of the container lifecycle. */
export type Hooks = z.output<typeof hooksSchema>;

/** The `linux` section: namespaces, id mappings, devices, cgroups, seccomp, and so on. */
export type LinuxConfig = z.output<typeof linuxSchema>;

/** One of `pid network mount ipc uts user cgroup time`. */
export type NamespaceType = z.output<typeof namespaceTypeSchema>;

/** A namespace to create, or to join when `path` is set. */
export type Namespace = z.output<typeof namespaceSchema>;

/** A uid or gid mapping of a user namespace (or an idmapped mount). */
export type IDMapping = z.output<typeof idMappingSchema>;

/** A device node to create in the container. */
export type LinuxDevice = z.output<typeof deviceSchema>;

/** A device cgroup rule (`linux.resources.devices[]`). */
export type LinuxDeviceCgroup = z.output<typeof deviceCgroupSchema>;

/** Cgroup resource limits (`linux.resources`). */
export type LinuxResources = z.output<typeof resourcesSchema>;

export type LinuxMemory = z.output<typeof memorySchema>;
export type LinuxCPU = z.output<typeof cpuSchema>;
export type LinuxPids = z.output<typeof pidsSchema>;
export type LinuxBlockIO = z.output<typeof blockIOSchema>;
export type LinuxHugepageLimit = z.output<typeof hugepageLimitSchema>;
export type LinuxNetwork = z.output<typeof networkSchema>;
export type LinuxRdma = z.output<typeof rdmaSchema>;

/** A seccomp filter (`linux.seccomp`). */
export type LinuxSeccomp = z.output<typeof seccompSchema>;
export type LinuxSyscall = z.output<typeof syscallSchema>;
export type LinuxSeccompArg = z.output<typeof seccompArgSchema>;
export type LinuxSeccompAction = (typeof SECCOMP_ACTIONS)[number];

export type LinuxIntelRdt = z.output<typeof intelRdtSchema>;
export type LinuxMemoryPolicy = z.output<typeof memoryPolicySchema>;
export type LinuxPersonality = z.output<typeof personalitySchema>;
export type Scheduler = z.output<typeof schedulerSchema>;
export type IOPriority = z.output<typeof ioPrioritySchema>;
