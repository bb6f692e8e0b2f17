import { call, closeFd, isSysError } from '@tsc/syscall';
import { NetlinkError } from '../errors.js';
import { inNetns } from '../netns.js';
import {
  AF_NETLINK,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_GET_STRICT_CHK,
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  NLMSGERR_ATTR_MSG,
  SO_RCVBUF,
  SO_RCVTIMEO,
  SO_SNDBUF,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
} from './constants.js';
import { bindNetlink, portId, recvDatagram, sendToKernel, setsockopt, setsockoptInt } from './ffi.js';
import { align4, attrStr, type MessageBuilder, messages, parseAttrs, type RawMessage } from './wire.js';

/** Open a NETLINK_ROUTE socket, in the netns behind `netnsFd` when given. */
export function openRouteSocket(netnsFd: number | undefined, nonblocking: boolean): number {
  const type = SOCK_RAW | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  const make = () => {
    try {
      return call('socket', [AF_NETLINK, type, NETLINK_ROUTE], { op: 'socket(AF_NETLINK, NETLINK_ROUTE)' });
    } catch (e) {
      throw new NetlinkError('socket', 'System', undefined, {
        errno: isSysError(e) ? e.errno : 0,
        cause: e,
      });
    }
  };
  return netnsFd === undefined ? make() : inNetns(netnsFd, make);
}

function sockErr(e: unknown, op: string): NetlinkError {
  if (e instanceof NetlinkError) return e;
  return new NetlinkError(op, isSysError(e) && e.errno === 105 ? undefined : 'System', undefined, {
    errno: isSysError(e) ? e.errno : 0,
    cause: e,
  });
}

/** Options of a request socket. */
export interface SocketOptions {
  /** How long to wait for an answer (SO_RCVTIMEO), ms. */
  timeoutMs: number;
  /** How often to retry a dump that came back inconsistent (NLM_F_DUMP_INTR). */
  dumpRetries: number;
}

/**
 * A NETLINK_ROUTE socket used for request/response. The kernel handles an rtnetlink request
 * inside sendmsg() (under the RTNL lock) and queues the answer before sendmsg returns; dump parts
 * are produced inside recvmsg(). So a blocking receive right after the send never waits for the
 * kernel to do work later: it is a synchronous call, measured at a few µs. SO_RCVTIMEO bounds it
 * anyway, so a lost answer becomes a `Timeout` error instead of a hung process.
 */
export class RequestSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly rbuf = Buffer.allocUnsafe(64 * 1024);
  readonly port: number;
  closed = false;

  constructor(
    readonly fd: number,
    private readonly opts: SocketOptions,
  ) {
    try {
      setsockoptInt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1, 'setsockopt NETLINK_EXT_ACK');
      setsockoptInt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1, 'setsockopt NETLINK_CAP_ACK');
      setsockoptInt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1, 'setsockopt NETLINK_GET_STRICT_CHK');
      setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, 32768, 'setsockopt SO_SNDBUF');
      setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, 1 << 20, 'setsockopt SO_RCVBUF');
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(BigInt(Math.floor(opts.timeoutMs / 1000)), 0);
      tv.writeBigInt64LE(BigInt((opts.timeoutMs % 1000) * 1000), 8);
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 'setsockopt SO_RCVTIMEO');
      bindNetlink(fd, 0);
      this.port = portId(fd);
    } catch (e) {
      closeFd(fd);
      throw sockErr(e, 'configure netlink socket');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }

  private send(msg: MessageBuilder, op: string): number {
    if (this.closed) throw new NetlinkError(op, 'InvalidArgument', 'the netlink handle is closed');
    this.seq = (this.seq + 1) >>> 0;
    const bytes = msg.finish(this.seq);
    try {
      sendToKernel(this.fd, bytes, bytes.length, op);
    } catch (e) {
      throw sockErr(e, op);
    }
    return this.seq;
  }

  /** Receive one datagram from the kernel; messages for other sequence numbers are skipped. */
  private *receive(seq: number, op: string): Generator<RawMessage> {
    for (;;) {
      let r: ReturnType<typeof recvDatagram>;
      const buf = this.rbuf;
      try {
        r = recvDatagram(this.fd, buf, 0, op);
      } catch (e) {
        throw sockErr(e, op);
      }
      if (r === undefined)
        throw new NetlinkError(op, 'Timeout', `no answer within ${this.opts.timeoutMs} ms`);
      // Dump parts are at most 32 KiB (the kernel caps them); a single answer above 64 KiB would
      // need a link with hundreds of VFs.
      if (r.full > r.n) throw new NetlinkError(op, 'Protocol', `answer of ${r.full} bytes was truncated`);
      if (r.sender !== 0) continue; // not from the kernel
      let any = false;
      for (const m of messages(buf, r.n)) {
        if (m.seq !== seq) continue;
        any = true;
        yield m;
      }
      if (!any) continue;
      return;
    }
  }

  /** Decode an NLMSG_ERROR payload: 0 for an ACK, else a NetlinkError. */
  private errorOf(m: RawMessage, op: string): NetlinkError | undefined {
    const p = m.payload;
    if (p.length < 4) return new NetlinkError(op, 'Protocol', 'short NLMSG_ERROR');
    const err = p.readInt32LE(0);
    if (err === 0) return undefined;
    let kernelMessage: string | undefined;
    if (m.flags & NLM_F_ACK_TLVS && p.length >= 4 + NLMSG_HDRLEN) {
      // nlmsgerr: error, then the request's header (and its payload unless capped), then TLVs.
      const reqLen = p.readUInt32LE(4);
      const tlvStart = 4 + (m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(reqLen));
      if (tlvStart <= p.length) kernelMessage = attrStr(parseAttrs(p, tlvStart).get(NLMSGERR_ATTR_MSG));
    }
    return NetlinkError.fromErrno(op, -err, kernelMessage || undefined);
  }

  /** Send a request with NLM_F_ACK and wait for the ACK (or the error). */
  request(msg: MessageBuilder, op: string): void {
    const seq = this.send(msg, op);
    for (;;) {
      for (const m of this.receive(seq, op)) {
        if (m.type === NLMSG_ERROR) {
          const e = this.errorOf(m, op);
          if (e) throw e;
          return;
        }
        // NLM_F_ECHO answers or others: keep reading until the ACK.
      }
    }
  }

  /**
   * Send a GET request and collect its answer messages (types other than ERROR/DONE/NOOP).
   * `dump`: the request carries NLM_F_DUMP and answers until NLMSG_DONE.
   */
  collect<T>(
    build: () => MessageBuilder,
    op: string,
    decode: (m: RawMessage) => T | undefined,
    dump: boolean,
  ): T[] {
    let attempt = 0;
    for (;;) {
      const out: T[] = [];
      let interrupted = false;
      const seq = this.send(build(), op);
      let done = false;
      while (!done) {
        for (const m of this.receive(seq, op)) {
          if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
          if (m.type === NLMSG_DONE) {
            done = true;
            break;
          }
          if (m.type === NLMSG_ERROR) {
            const e = this.errorOf(m, op);
            if (e) {
              // drain nothing: an error ends the exchange
              throw e;
            }
            done = true;
            break;
          }
          if (m.type === NLMSG_NOOP || m.type === NLMSG_OVERRUN) continue;
          const v = decode(m);
          if (v !== undefined) out.push(v);
          if (!dump && !(m.flags & NLM_F_MULTI)) done = true;
        }
      }
      if (!interrupted) return out;
      if (attempt++ >= this.opts.dumpRetries) {
        throw new NetlinkError(
          op,
          'DumpInterrupted',
          `the dump changed while it was read (${attempt} tries)`,
          {
            partial: out,
          },
        );
      }
    }
  }
}

export const REQ = NLM_F_REQUEST;
export const REQ_ACK = NLM_F_REQUEST | NLM_F_ACK;
export const REQ_DUMP = NLM_F_REQUEST | NLM_F_DUMP;
