/**
 * `@tsc/namespaces`: the eight Linux namespace kinds (OCI type name, `/proc/<pid>/ns`
 * file, `CLONE_NEW*` flag), the order to join them, and inspection: which namespaces a
 * process is in, whether two processes share one, and what a namespace file (a
 * `/proc/<pid>/ns/*` link or a bind mount of one) refers to.
 *
 * Nothing runs at import time (the CLI starts from a V8 startup snapshot): /proc is read
 * and the FFI loaded only when a function is called.
 *
 * @packageDocumentation
 */
export {
  isNamespaceError,
  NamespaceError,
  type NamespaceErrorCode,
  type NamespaceErrorDetails,
} from './errors.js';
export {
  checkNamespacePath,
  type NamespaceId,
  type NamespaceInfo,
  NS_GET_NSTYPE,
  NSFS_MAGIC,
  namespaceOfPath,
  namespacesOf,
  type Pid,
  parseNamespaceLink,
  sameNamespace,
} from './inspect.js';
export {
  cloneFlags,
  isNamespaceType,
  joinOrder,
  joinRank,
  kindOfFile,
  kindOfFlag,
  NAMESPACE_TYPES,
  NAMESPACES,
  type NamespaceFile,
  type NamespaceKind,
  type NamespaceType,
  NS_FILES,
  namespaceKind,
} from './kinds.js';
