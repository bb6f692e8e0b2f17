import { MS } from '@tsc/syscall';

/** A mount's options split the way mount(2) wants them. */
export interface ParsedMountOptions {
  /** Flags for the mount call itself (without propagation). */
  flags: number;
  /** Flags cleared by an explicit option (e.g. `rw`, `suid`), for remounts. */
  cleared: number;
  /** Propagation flags to apply after mounting, in order. */
  propagation: number[];
  /** Filesystem-specific options joined by commas (`mode=755,size=65536k`). */
  data: string;
  /** `bind` or `rbind` was given. */
  bind: boolean;
  /** `rbind` was given. */
  recursive: boolean;
}

const SET: Record<string, number> = {
  ro: MS.RDONLY,
  nosuid: MS.NOSUID,
  nodev: MS.NODEV,
  noexec: MS.NOEXEC,
  sync: MS.SYNCHRONOUS,
  dirsync: MS.DIRSYNC,
  remount: MS.REMOUNT,
  mand: MS.MANDLOCK,
  noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME,
  relatime: MS.RELATIME,
  strictatime: MS.STRICTATIME,
  lazytime: MS.LAZYTIME,
  nosymfollow: MS.NOSYMFOLLOW,
  silent: MS.SILENT,
};
const CLEAR: Record<string, number> = {
  rw: MS.RDONLY,
  suid: MS.NOSUID,
  dev: MS.NODEV,
  exec: MS.NOEXEC,
  async: MS.SYNCHRONOUS,
  nomand: MS.MANDLOCK,
  atime: MS.NOATIME,
  diratime: MS.NODIRATIME,
  norelatime: MS.RELATIME,
  nostrictatime: MS.STRICTATIME,
  nolazytime: MS.LAZYTIME,
  symfollow: MS.NOSYMFOLLOW,
  loud: MS.SILENT,
  defaults: 0,
};
const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};
const UNSUPPORTED = new Set([
  'idmap',
  'ridmap',
  'rro',
  'rrw',
  'rnosuid',
  'rsuid',
  'rnodev',
  'rdev',
  'rnoexec',
  'rexec',
]);

/** Parse OCI mount options; unknown words go to the filesystem as data. Throws on unsupported ones. */
export function parseMountOptions(options: readonly string[] | undefined): ParsedMountOptions {
  const r: ParsedMountOptions = {
    flags: 0,
    cleared: 0,
    propagation: [],
    data: '',
    bind: false,
    recursive: false,
  };
  const data: string[] = [];
  for (const o of options ?? []) {
    if (o in SET) {
      r.flags |= SET[o] as number;
      r.cleared &= ~(SET[o] as number);
    } else if (o in CLEAR) {
      r.flags &= ~(CLEAR[o] as number);
      r.cleared |= CLEAR[o] as number;
    } else if (o in PROPAGATION) r.propagation.push(PROPAGATION[o] as number);
    else if (o === 'bind') r.bind = true;
    else if (o === 'rbind') {
      r.bind = true;
      r.recursive = true;
    } else if (UNSUPPORTED.has(o)) throw new Error(`mount option "${o}" is not supported yet`);
    else data.push(o);
  }
  r.data = data.join(',');
  return r;
}

/** The propagation flags for OCI `linux.rootfsPropagation` (default: rslave, like runc). */
export function rootfsPropagationFlags(p: string | undefined): number {
  if (p === undefined || p === '') return MS.SLAVE | MS.REC;
  const f = PROPAGATION[p];
  if (f === undefined) throw new Error(`linux.rootfsPropagation: unknown value "${p}"`);
  return f;
}
