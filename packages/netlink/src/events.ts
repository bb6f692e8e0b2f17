import { closeFd, type FdWatch, isSysError, watchReadable } from '@tsc/syscall';
import { NetlinkError } from './errors.js';
import { decodeAddr, decodeLink, decodeNeigh, decodeRoute } from './internal/codec.js';
import {
  MSG_DONTWAIT,
  NETLINK_ADD_MEMBERSHIP,
  RTM,
  RTNLGRP,
  SO_RCVBUF,
  SOL_NETLINK,
  SOL_SOCKET,
} from './internal/constants.js';
import { bindNetlink, recvDatagram, setsockoptInt } from './internal/ffi.js';
import { openRouteSocket } from './internal/socket.js';
import { messages } from './internal/wire.js';
import type { EventGroup, NetlinkEvent } from './types.js';

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /** Called for each event instead of queueing it for iteration. */
  onEvent?: (e: NetlinkEvent) => void;
  /** Closes the subscription when aborted. */
  signal?: AbortSignal;
  /** Socket receive buffer, bytes (default 1 MiB; a small one overruns sooner). */
  receiveBufferSize?: number;
  /** Let the process exit while subscribed (default false). */
  unref?: boolean;
}

/** A live subscription: an async iterable of events, ended by {@link Subscription.close}. */
export interface Subscription extends AsyncIterable<NetlinkEvent> {
  /** Stop: closes the socket; a pending iteration ends. Idempotent. */
  close(): void;
  readonly closed: boolean;
}

const GROUPS: Record<EventGroup, number[]> = {
  link: [RTNLGRP.LINK],
  addr: [RTNLGRP.IPV4_IFADDR, RTNLGRP.IPV6_IFADDR],
  route: [RTNLGRP.IPV4_ROUTE, RTNLGRP.IPV6_ROUTE],
  neigh: [RTNLGRP.NEIGH],
};

function decodeEvent(type: number, p: Buffer): NetlinkEvent | undefined {
  switch (type) {
    case RTM.NEWLINK:
    case RTM.DELLINK:
      return { type: 'link', action: type === RTM.NEWLINK ? 'new' : 'del', link: decodeLink(p) };
    case RTM.NEWADDR:
    case RTM.DELADDR:
      return { type: 'addr', action: type === RTM.NEWADDR ? 'new' : 'del', address: decodeAddr(p) };
    case RTM.NEWROUTE:
    case RTM.DELROUTE:
      return { type: 'route', action: type === RTM.NEWROUTE ? 'new' : 'del', route: decodeRoute(p) };
    case RTM.NEWNEIGH:
    case RTM.DELNEIGH:
      return { type: 'neigh', action: type === RTM.NEWNEIGH ? 'new' : 'del', neighbour: decodeNeigh(p) };
    default:
      return undefined;
  }
}

/** @internal */
export function openEventSocket(
  nsFd: number | undefined,
  groups: readonly EventGroup[],
  opts: SubscribeOptions,
  onClose: () => void,
): Subscription {
  const op = `subscribe ${groups.join(',')}`;
  const fd = openRouteSocket(nsFd, true);
  try {
    setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, opts.receiveBufferSize ?? 1 << 20, `${op}: SO_RCVBUF`);
    bindNetlink(fd, 0);
    for (const g of new Set(groups.flatMap((x) => GROUPS[x] ?? []))) {
      setsockoptInt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g, `${op}: NETLINK_ADD_MEMBERSHIP ${g}`);
    }
  } catch (e) {
    closeFd(fd);
    throw new NetlinkError(op, 'System', undefined, { errno: isSysError(e) ? e.errno : 0, cause: e });
  }

  const queue: NetlinkEvent[] = [];
  let waiter: ((r: IteratorResult<NetlinkEvent>) => void) | undefined;
  let failure: unknown;
  let closed = false;
  let watch: FdWatch | undefined;
  const buf = Buffer.allocUnsafe(64 * 1024);

  const emit = (e: NetlinkEvent) => {
    if (opts.onEvent) {
      opts.onEvent(e);
    } else if (waiter) {
      const w = waiter;
      waiter = undefined;
      w({ value: e, done: false });
    } else {
      queue.push(e);
    }
  };

  const drain = () => {
    while (!closed) {
      let r: ReturnType<typeof recvDatagram>;
      try {
        r = recvDatagram(fd, buf, MSG_DONTWAIT, op);
      } catch (e) {
        if (isSysError(e) && e.errno === 105 /* ENOBUFS */) {
          emit({ type: 'overrun' });
          continue;
        }
        failure = e;
        sub.close();
        return;
      }
      if (r === undefined) return;
      if (r.sender !== 0) continue;
      for (const m of messages(buf, r.n)) {
        const ev = decodeEvent(m.type, m.payload);
        if (ev) emit(ev);
      }
    }
  };

  const onAbort = () => sub.close();
  const sub: Subscription = {
    get closed() {
      return closed;
    },
    close() {
      if (closed) return;
      closed = true;
      watch?.close();
      closeFd(fd);
      opts.signal?.removeEventListener('abort', onAbort);
      onClose();
      if (waiter) {
        const w = waiter;
        waiter = undefined;
        w({ value: undefined, done: true });
      }
    },
    [Symbol.asyncIterator](): AsyncIterator<NetlinkEvent> {
      return {
        next: () => {
          const e = queue.shift();
          if (e) return Promise.resolve({ value: e, done: false });
          if (failure) {
            const f = failure;
            failure = undefined;
            return Promise.reject(f);
          }
          if (closed) return Promise.resolve({ value: undefined, done: true });
          return new Promise((resolve) => {
            waiter = resolve;
          });
        },
        return: () => {
          sub.close();
          return Promise.resolve({ value: undefined, done: true });
        },
      };
    },
  };
  watch = watchReadable(fd, drain);
  if (opts.unref) watch.unref();
  if (opts.signal) {
    if (opts.signal.aborted) sub.close();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }
  return sub;
}
