import { errnoDescription, errnoName } from '@tsc/syscall';

const BRAND = Symbol.for('@tsc/netlink.NetlinkError');

/** Portable reasons of a {@link NetlinkError}; switch on these, never on the message. */
export type NetlinkErrorCode =
  /** ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL: the link, address, route or neighbour is not there. */
  | 'NotFound'
  /** EEXIST: it is there already (an add without `replace`). */
  | 'AlreadyExists'
  /** EPERM, EACCES: not allowed (no CAP_NET_ADMIN in the namespace's user namespace). */
  | 'PermissionDenied'
  /** EINVAL, ERANGE, ENETUNREACH, …: the kernel refused the request's contents. */
  | 'Invalid'
  /** EBUSY. */
  | 'Busy'
  /** EOPNOTSUPP: e.g. a link kind this kernel does not have (no module). */
  | 'NotSupported'
  /** A dump stayed inconsistent (NLM_F_DUMP_INTR) after every retry; `partial` holds what came. */
  | 'DumpInterrupted'
  /** No answer within the handle's timeout. */
  | 'Timeout'
  /** Invalid input caught before anything was sent (bad address text, bad name). */
  | 'InvalidArgument'
  /** A malformed or unexpected answer. */
  | 'Protocol'
  /** The socket call itself failed (socket, setns, sendto, recvfrom). */
  | 'System';

function codeOf(errno: number): NetlinkErrorCode {
  switch (errnoName(errno)) {
    case 'ENODEV':
    case 'ENOENT':
    case 'ESRCH':
    case 'EADDRNOTAVAIL':
      return 'NotFound';
    case 'EEXIST':
      return 'AlreadyExists';
    case 'EPERM':
    case 'EACCES':
      return 'PermissionDenied';
    case 'EBUSY':
      return 'Busy';
    case 'EOPNOTSUPP':
      return 'NotSupported';
    case 'EAGAIN':
    case 'ETIMEDOUT':
      return 'Timeout';
    default:
      return 'Invalid';
  }
}

/** What a {@link NetlinkError} carries besides its message. */
export interface NetlinkErrorDetails {
  /** The errno (positive), 0 when there is none (e.g. `InvalidArgument`). */
  errno?: number;
  /** The kernel's extended-ACK text (NLMSGERR_ATTR_MSG), e.g. `Unknown device type`. */
  kernelMessage?: string;
  /** Results received before the error (dumps). */
  partial?: readonly unknown[];
  cause?: unknown;
}

/**
 * A failed netlink operation. The message reads
 * `<op>: <ERRNO> (<description>)[: <kernel's extended-ACK text>]`, e.g.
 * `RTM_NEWLINK tnl0 (veth): EEXIST (file exists)` or
 * `RTM_NEWLINK x0 (nosuchkind): EOPNOTSUPP (operation not supported): Unknown device type`.
 */
export class NetlinkError extends Error {
  readonly code: NetlinkErrorCode;
  /** The errno (positive), 0 for errors found before anything was sent. */
  readonly errno: number;
  /** The errno's name (`EEXIST`), empty when `errno` is 0. */
  readonly errnoName: string;
  /** The operation, e.g. `RTM_NEWLINK veth0`. */
  readonly op: string;
  /** The kernel's extended-ACK text, when it sent one. */
  readonly kernelMessage?: string;
  /** Results received before the error (a dump that stayed interrupted). */
  readonly partial?: readonly unknown[];

  constructor(
    op: string,
    code: NetlinkErrorCode | undefined,
    message: string | undefined,
    d: NetlinkErrorDetails = {},
  ) {
    const errno = d.errno ?? 0;
    const c = code ?? (errno ? codeOf(errno) : 'Protocol');
    const base = errno ? `${errnoName(errno)} (${errnoDescription(errno)})` : '';
    const text = [base, d.kernelMessage, message].filter((x) => x).join(': ');
    super(`${op}: ${text}`, d.cause === undefined ? undefined : { cause: d.cause });
    this.code = c;
    this.errno = errno;
    this.errnoName = errno ? errnoName(errno) : '';
    this.op = op;
    if (d.kernelMessage !== undefined) this.kernelMessage = d.kernelMessage;
    if (d.partial !== undefined) this.partial = d.partial;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** A kernel answer `-errno` for `op`. */
  static fromErrno(op: string, errno: number, kernelMessage?: string): NetlinkError {
    return new NetlinkError(
      op,
      undefined,
      undefined,
      kernelMessage === undefined ? { errno } : { errno, kernelMessage },
    );
  }

  static {
    Object.defineProperty(NetlinkError.prototype, 'name', { value: 'NetlinkError', enumerable: false });
  }
}

/** True for a {@link NetlinkError}, also one from another copy of this package. */
export function isNetlinkError(e: unknown): e is NetlinkError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}
