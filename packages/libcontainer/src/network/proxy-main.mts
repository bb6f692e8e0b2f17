/**
 * The userland port proxy (like docker-proxy): forwards TCP connections and UDP datagrams that
 * reach HOSTIP:HOSTPORT to CONTAINERIP:PORT. It serves what DNAT cannot: connections to the
 * host's loopback addresses. One detached process per container, started by attachNetwork and
 * killed by detachNetwork; it also exits by itself once the container's init is gone.
 *
 *   node proxy-main.js CONTAINERIP WATCHPID:STARTTIME PROTO/HOSTIP:HOSTPORT:CONTAINERPORT...
 *
 * It reports readiness on fd 3 (`ok` or `error <message>`) when that fd is a pipe. Only Node's
 * built-in modules are used, so the file can be copied next to a bundled CLI.
 */
import * as dgram from 'node:dgram';
import { closeSync, readFileSync, writeSync } from 'node:fs';
import * as net from 'node:net';
import { pathToFileURL } from 'node:url';

interface Forward {
  protocol: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function report(line: string): void {
  try {
    writeSync(3, `${line}\n`);
    closeSync(3);
  } catch {
    // not started with a readiness pipe
  }
}

function parse(argv: readonly string[]): {
  containerIp: string;
  watch?: { pid: number; startTime: string };
  forwards: Forward[];
} {
  const [containerIp, watch, ...specs] = argv;
  if (!containerIp || !watch)
    throw new Error('usage: proxy CONTAINERIP WATCHPID:STARTTIME PROTO/HOSTIP:HOSTPORT:CONTAINERPORT...');
  const [pid, startTime] = watch.split(':');
  const forwards = specs.map((s) => {
    const m = /^(tcp|udp)\/([\d.]*):(\d+):(\d+)$/.exec(s);
    if (!m) throw new Error(`bad forward "${s}"`);
    return {
      protocol: m[1] as 'tcp' | 'udp',
      hostIp: m[2] || '0.0.0.0',
      hostPort: Number(m[3]),
      containerPort: Number(m[4]),
    };
  });
  return Number(pid) > 0 && startTime
    ? { containerIp, watch: { pid: Number(pid), startTime }, forwards }
    : { containerIp, forwards };
}

function tcp(f: Forward, containerIp: string): Promise<net.Server> {
  const server = net.createServer({ pauseOnConnect: false }, (client) => {
    const upstream = net.connect({ host: containerIp, port: f.containerPort });
    const done = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done);
    upstream.on('error', done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: f.hostIp, port: f.hostPort, exclusive: true }, () => resolve(server));
  });
}

function udp(f: Forward, containerIp: string): Promise<dgram.Socket> {
  const server = dgram.createSocket('udp4');
  const flows = new Map<string, { sock: dgram.Socket; timer: NodeJS.Timeout }>();
  server.on('message', (msg, from) => {
    const key = `${from.address}:${from.port}`;
    let flow = flows.get(key);
    if (!flow) {
      const sock = dgram.createSocket('udp4');
      sock.on('message', (reply) => server.send(reply, from.port, from.address));
      sock.on('error', () => sock.close());
      const timer = setTimeout(() => {}, 0);
      flow = { sock, timer };
      flows.set(key, flow);
    }
    clearTimeout(flow.timer);
    const f2 = flow;
    f2.timer = setTimeout(() => {
      f2.sock.close();
      flows.delete(key);
    }, 60_000);
    flow.sock.send(msg, f.containerPort, containerIp);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.bind({ address: f.hostIp, port: f.hostPort, exclusive: true }, () => resolve(server));
  });
}

/** Run the proxy with the arguments after the script name; resolves once every port listens. */
export async function runPortProxy(argv: readonly string[]): Promise<void> {
  let cfg: ReturnType<typeof parse>;
  try {
    cfg = parse(argv);
    for (const f of cfg.forwards) {
      if (f.protocol === 'tcp') await tcp(f, cfg.containerIp);
      else await udp(f, cfg.containerIp);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    report(`error ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '));
    process.exit(1);
  }
  report('ok');
  const watch = cfg.watch;
  if (watch) {
    setInterval(() => {
      if (startTimeOf(watch.pid) !== watch.startTime) process.exit(0);
    }, 1000);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.title = 'nsinit-proxy';
  void runPortProxy(process.argv.slice(2));
}
