import * as z from 'zod/mini';
import { ociVersionSchema } from './config.js';
import { ConfigError } from './errors.js';
import { PARSE_OPTIONS, toConfigIssues } from './issues.js';
import { integer } from './schema-helpers.js';

/** Container statuses: the OCI ones plus runc's `paused`. */
export const CONTAINER_STATUSES = ['creating', 'created', 'running', 'stopped', 'paused'] as const;

export type ContainerStatus = (typeof CONTAINER_STATUSES)[number];

/**
 * The OCI runtime state of a container, as printed by `nsinit state`
 * (runtime-spec `runtime.md#state`).
 */
export interface ContainerState {
  /** Version of the runtime-spec the state complies with. */
  ociVersion: string;
  /** The container's ID, unique on this host. */
  id: string;
  status: ContainerStatus;
  /** The container process's pid on the host; required when created or running. */
  pid?: number;
  /** Absolute path of the container's bundle directory. */
  bundle: string;
  annotations?: Record<string, string>;
}

/** Schema for reading a state document; unknown properties are kept. */
export const containerStateSchema = z.looseObject({
  ociVersion: ociVersionSchema,
  id: z.string().check(z.minLength(1)),
  status: z.enum(CONTAINER_STATUSES),
  pid: z.optional(integer(0, 0x7fffffff)),
  bundle: z.string(),
  annotations: z.optional(z.record(z.string(), z.string())),
});

// The schema's output must stay assignable to the interface (zod types optional
// properties as `T | undefined`; parsing never produces explicit undefineds).
type Defined<T> = { [K in keyof T]-?: Exclude<T[K], undefined> };
type _StateCheck =
  Defined<z.output<typeof containerStateSchema>> extends Defined<ContainerState> ? true : never;
const _stateCheck: _StateCheck = true;
void _stateCheck;

/**
 * Validate a decoded state document.
 *
 * @throws {ConfigError} (code `InvalidConfig`) naming `source` (default `state.json`).
 */
export function parseState(input: unknown, source = 'state.json'): ContainerState {
  const result = containerStateSchema.safeParse(input, PARSE_OPTIONS);
  if (!result.success) throw new ConfigError(toConfigIssues(result.error.issues), source);
  return result.data as ContainerState;
}
