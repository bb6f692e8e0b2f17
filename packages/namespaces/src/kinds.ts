import { CLONE } from '@tsc/syscall';

/** The OCI names of the eight Linux namespace kinds (`linux.namespaces[].type`). */
export type NamespaceType = 'mount' | 'uts' | 'ipc' | 'pid' | 'network' | 'user' | 'cgroup' | 'time';

/** The file names of the namespaces under `/proc/<pid>/ns/` (and the prefix of their links, `net:[…]`). */
export type NamespaceFile = 'mnt' | 'uts' | 'ipc' | 'pid' | 'net' | 'user' | 'cgroup' | 'time';

/** One namespace kind: its OCI name, its `/proc/<pid>/ns` file and its `CLONE_NEW*` flag. */
export interface NamespaceKind {
  readonly type: NamespaceType;
  readonly file: NamespaceFile;
  /** The `CLONE_NEW*` flag (clone3, unshare, setns; also what `NS_GET_NSTYPE` returns). */
  readonly flag: number;
}

/** The eight kinds, in the order of the OCI runtime-spec's list. */
export const NAMESPACES: readonly NamespaceKind[] = Object.freeze([
  { type: 'pid', file: 'pid', flag: CLONE.NEWPID },
  { type: 'network', file: 'net', flag: CLONE.NEWNET },
  { type: 'mount', file: 'mnt', flag: CLONE.NEWNS },
  { type: 'ipc', file: 'ipc', flag: CLONE.NEWIPC },
  { type: 'uts', file: 'uts', flag: CLONE.NEWUTS },
  { type: 'user', file: 'user', flag: CLONE.NEWUSER },
  { type: 'cgroup', file: 'cgroup', flag: CLONE.NEWCGROUP },
  { type: 'time', file: 'time', flag: CLONE.NEWTIME },
] as const satisfies readonly NamespaceKind[]);

/** The OCI names, in the order of {@link NAMESPACES}. */
export const NAMESPACE_TYPES: readonly NamespaceType[] = Object.freeze(NAMESPACES.map((k) => k.type));

/** Each kind by OCI name: `NS_FILES.network` → `{ type: 'network', file: 'net', flag: CLONE_NEWNET }`. */
export const NS_FILES: Readonly<Record<NamespaceType, NamespaceKind>> = Object.freeze(
  Object.fromEntries(NAMESPACES.map((k) => [k.type, k])) as Record<NamespaceType, NamespaceKind>,
);

/** True when `s` is one of the eight OCI namespace type names. */
export function isNamespaceType(s: string): s is NamespaceType {
  return Object.hasOwn(NS_FILES, s);
}

/** The kind of an OCI type name, or undefined for an unknown name. */
export function namespaceKind(type: string): NamespaceKind | undefined {
  return isNamespaceType(type) ? NS_FILES[type] : undefined;
}

/** The kind whose `/proc/<pid>/ns` file (or link prefix) is `file` (`net` → network), or undefined. */
export function kindOfFile(file: string): NamespaceKind | undefined {
  return NAMESPACES.find((k) => k.file === file);
}

/** The kind of a single `CLONE_NEW*` flag (as `NS_GET_NSTYPE` returns it), or undefined. */
export function kindOfFlag(flag: number): NamespaceKind | undefined {
  return NAMESPACES.find((k) => k.flag === flag);
}

/** The `CLONE_NEW*` flags of `types` OR-ed together; an unknown name throws a TypeError. */
export function cloneFlags(types: readonly string[]): number {
  let flags = 0;
  for (const t of types) {
    const k = namespaceKind(t);
    if (!k) throw new TypeError(`unknown namespace type "${t}"`);
    flags |= k.flag;
  }
  return flags;
}

/** Where a kind goes in a join: 0 for user, 2 for mount, 1 for the others. */
export function joinRank(type: string): 0 | 1 | 2 {
  return type === 'user' ? 0 : type === 'mount' ? 2 : 1;
}

/**
 * The order to `setns` into namespaces: user first (the others may be owned by it,
 * and an unprivileged caller gains its capabilities there), mount last (it changes
 * how paths resolve). Unknown names are dropped; the others keep their relative order.
 */
export function joinOrder(types: readonly string[]): NamespaceType[] {
  return types.filter(isNamespaceType).sort((a, b) => joinRank(a) - joinRank(b));
}
