/**
 * `linux.resources` for a live container (`nsinit update`): validation of the OCI subset that can
 * change while a container runs, and merging the change into the stored config.
 */
import { ContainerError } from './errors.js';
import {
  blockIOSchema,
  cpuSchema,
  type LinuxResources,
  memorySchema,
  networkSchema,
  pidsSchema,
  resourcesSchema,
} from './spec/config.js';
import { formatConfigMessage, formatPath } from './spec/errors.js';
import { PARSE_OPTIONS, toConfigIssues } from './spec/issues.js';
import { parseJson } from './spec/json.js';

/** Sections whose keys are checked (a misspelt key is an error rather than silently ignored). */
function knownKeys(): Record<string, readonly string[]> {
  return {
    memory: Object.keys(memorySchema.shape),
    cpu: Object.keys(cpuSchema.shape),
    pids: Object.keys(pidsSchema.shape),
    blockIO: Object.keys(blockIOSchema.shape),
    network: Object.keys(networkSchema.shape),
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(prefix: PropertyKey[], path: PropertyKey[], message: string, source?: string): never {
  const p = formatPath([...prefix, ...path]);
  throw new ContainerError('InvalidArgument', formatConfigMessage([{ path: p, message }], source));
}

/**
 * Validate resources for {@link Container.update}: an OCI `linux.resources` object (the runtime-spec
 * schema: types, ranges, -1 only where it means unlimited), with known keys only. `devices` cannot be
 * changed on a live container (runc's update ignores them; here they are refused).
 *
 * @param source names the input in messages (a file); without it paths start at `linux.resources`.
 * @throws {ContainerError} `InvalidArgument`, one line naming the field.
 */
export function parseResources(input: unknown, source?: string): LinuxResources {
  const prefix: PropertyKey[] = source === undefined ? ['linux', 'resources'] : [];
  if (!isPlainObject(input)) {
    const got = Array.isArray(input) ? 'array' : input === null ? 'null' : typeof input;
    fail(prefix, [], `expected an object (OCI linux.resources), got ${got}`, source);
  }
  const top = Object.keys(resourcesSchema.shape);
  const sections = knownKeys();
  for (const [k, v] of Object.entries(input)) {
    if (k === 'devices') {
      fail(prefix, [k], 'device rules cannot be changed on a live container', source);
    }
    if (!top.includes(k)) fail(prefix, [k], `unknown property (expected one of ${top.join(', ')})`, source);
    const known = sections[k];
    if (known && isPlainObject(v)) {
      for (const sub of Object.keys(v)) {
        if (!known.includes(sub)) {
          fail(prefix, [k, sub], `unknown property (expected one of ${known.join(', ')})`, source);
        }
      }
    }
  }
  const r = resourcesSchema.safeParse(input, PARSE_OPTIONS);
  if (!r.success) {
    const issues = toConfigIssues(r.error.issues, prefix);
    throw new ContainerError('InvalidArgument', formatConfigMessage(issues, source));
  }
  return r.data;
}

/**
 * {@link parseResources} of a JSON text (the `-r` file of `nsinit update`); invalid JSON is reported
 * with its line and column.
 * @throws {ContainerError} `InvalidArgument`, one line prefixed by `source`.
 */
export function parseResourcesJSON(text: string, source: string): LinuxResources {
  const parsed = parseJson(text);
  if (!parsed.ok) {
    const { line, column, offset, reason } = parsed.error;
    throw new ContainerError(
      'InvalidArgument',
      formatConfigMessage(
        [
          {
            path: '',
            message: `invalid JSON at line ${line}, column ${column} (offset ${offset}): ${reason}`,
          },
        ],
        source,
      ),
    );
  }
  return parseResources(parsed.value, source);
}

/**
 * `base` with `change` applied, as the stored config should read after an update: the sections
 * `memory`, `cpu`, `pids`, `blockIO`, `network` and `unified` are merged key by key (a list inside
 * them, such as `blockIO.throttleReadBpsDevice`, is replaced); hugepage limits are merged by page
 * size and `rdma` by device.
 */
export function mergeResources(base: LinuxResources, change: LinuxResources): LinuxResources {
  const out: LinuxResources = { ...base };
  if (change.memory) out.memory = { ...base.memory, ...change.memory };
  if (change.cpu) out.cpu = { ...base.cpu, ...change.cpu };
  if (change.pids) out.pids = { ...base.pids, ...change.pids };
  if (change.blockIO) out.blockIO = { ...base.blockIO, ...change.blockIO };
  if (change.network) out.network = { ...base.network, ...change.network };
  if (change.unified) out.unified = { ...base.unified, ...change.unified };
  if (change.rdma) {
    const rdma = { ...base.rdma };
    for (const [dev, v] of Object.entries(change.rdma)) rdma[dev] = { ...rdma[dev], ...v };
    out.rdma = rdma;
  }
  if (change.hugepageLimits) {
    const byPage = new Map((base.hugepageLimits ?? []).map((h) => [h.pageSize, h]));
    for (const h of change.hugepageLimits) byPage.set(h.pageSize, h);
    out.hugepageLimits = [...byPage.values()];
  }
  return out;
}
