import type { Label, Program, Reg } from '@tsc/executor';
import { AT, Errno, O, RESOLVE } from '@tsc/syscall';

/** The fd number mount targets are moved to, so they can be named `/proc/self/fd/<n>`. */
export const TARGET_FD = 1000;
/** `/proc/self/fd/<TARGET_FD>`: the path every in-root mount goes through. */
export const TARGET_PATH = `/proc/self/fd/${TARGET_FD}`;

/** struct open_how for openat2. */
export function openHow(flags: number, resolve: number, mode = 0): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(BigInt(flags), 0);
  b.writeBigUInt64LE(BigInt(mode), 8);
  b.writeBigUInt64LE(BigInt(resolve), 16);
  return b;
}

/** Split an absolute in-container path into clean components; `..` cannot climb above the root. */
export function components(path: string): string[] {
  const out: string[] = [];
  for (const c of path.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') out.pop();
    else out.push(c);
  }
  return out;
}

/**
 * Emits ops that work on paths inside the container root through a root fd,
 * never by host path: every lookup is `openat2(root, p, RESOLVE_IN_ROOT)`, so a
 * symlink (also one swapped in while we work) resolves inside the root
 * (CVE-2021-30465); creation is mkdirat/openat relative to an fd of the parent.
 */
export class InRoot {
  private readonly a: Reg;
  private readonly b: Reg;

  constructor(
    private readonly p: Program,
    private readonly root: Reg | number,
  ) {
    this.a = p.reg();
    this.b = p.reg();
  }

  /**
   * Open `path` as an O_PATH fd; fails if missing. The register returned is
   * valid until the next call on this object.
   */
  open(path: string, what: string, opts: { noSymlinks?: boolean; out?: Reg } = {}): Reg {
    const out = opts.out ?? this.a;
    const rel = components(path).join('/') || '.';
    let resolve = RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS;
    if (opts.noSymlinks) resolve |= RESOLVE.NO_SYMLINKS;
    const how = openHow(O.PATH | O.CLOEXEC, resolve);
    this.p.syscall('openat2', [this.root, rel, how, how.length], { what, out });
    return out;
  }

  /**
   * Make sure `path` exists (directories all the way; the last one a directory
   * or, with `file`, an empty regular file) and return an O_PATH fd to it,
   * valid until the next call on this object.
   */
  ensure(path: string, kind: 'dir' | 'file', what: string, opts: { noSymlinks?: boolean } = {}): Reg {
    const parts = components(path);
    if (parts.length === 0) return this.open('/', what);
    let parent: Reg | number = this.root;
    let cur = this.a;
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i] as string;
      const sub = `/${parts.slice(0, i + 1).join('/')}`;
      if (i === parts.length - 1 && kind === 'file') {
        this.p.syscall(
          'openat',
          [parent, name, O.CREAT | O.EXCL | O.WRONLY | O.CLOEXEC | O.NOFOLLOW, 0o644],
          {
            what: `${what}: create ${sub}`,
            out: cur,
            onError: { skipTo: this.after() },
            errno: Errno.EEXIST,
          },
        );
        this.p.syscall('close', [cur], { what: `${what}: close`, onError: 'ignore' });
        this.placeAfter();
      } else {
        this.p.syscall('mkdirat', [parent, name, 0o755], {
          what: `${what}: mkdir ${sub}`,
          onError: 'ignore',
          errno: Errno.EEXIST,
        });
      }
      this.open(sub, `${what}: open ${sub}`, {
        out: cur,
        noSymlinks: i === parts.length - 1 && opts.noSymlinks === true,
      });
      if (parent !== this.root)
        this.p.syscall('close', [parent], { what: `${what}: close`, onError: 'ignore' });
      parent = cur;
      cur = cur === this.a ? this.b : this.a;
    }
    return parent as Reg;
  }

  /** Move the fd in `r` to {@link TARGET_FD} so it can be named by {@link TARGET_PATH}. */
  pin(r: Reg, what: string): void {
    this.p.syscall('dup3', [r, TARGET_FD, O.CLOEXEC], { what });
    this.p.syscall('close', [r], { what, onError: 'ignore' });
  }

  private pending: Label | undefined;
  private after(): Label {
    this.pending = this.p.label();
    return this.pending;
  }
  private placeAfter(): void {
    if (this.pending) this.p.place(this.pending);
    this.pending = undefined;
  }
}

export { AT };
