/** /etc/hosts, /etc/hostname and /etc/resolv.conf for a container, written into a directory. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostEntry } from './types.js';

const LOCALHOST = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

/** The text of /etc/hosts. */
export function hostsFile(o: {
  ip?: string | undefined;
  hostname: string;
  id: string;
  links?: readonly { alias: string; id: string; ip: string }[];
  addHosts?: readonly HostEntry[];
}): string {
  const lines = [...LOCALHOST];
  for (const h of o.addHosts ?? []) lines.push(`${h.ip}\t${h.host}`);
  for (const l of o.links ?? []) lines.push(`${l.ip}\t${l.alias === l.id ? l.id : `${l.alias} ${l.id}`}`);
  if (o.ip) lines.push(`${o.ip}\t${o.hostname === o.id ? o.hostname : `${o.hostname} ${o.id}`}`);
  return `${lines.join('\n')}\n`;
}

const LOOPBACK_NS = /^(127\.|::1$|0:0:0:0:0:0:0:1$)/;

/**
 * The text of /etc/resolv.conf: the given nameservers, or the host's without loopback ones (a
 * resolver on the host's 127.0.0.53 is unreachable from the container's namespace); with none
 * left, Google's public resolvers, as Docker does.
 */
export function resolvConf(o: {
  dns?: readonly string[] | undefined;
  search?: readonly string[] | undefined;
  options?: readonly string[] | undefined;
  hostFile?: string;
}): string {
  let host = '';
  try {
    host = readFileSync(o.hostFile ?? '/etc/resolv.conf', 'utf8');
  } catch {
    // no host resolv.conf
  }
  const hostLines = host.split('\n').map((l) => l.trim());
  const field = (k: string) =>
    hostLines
      .filter((l) => l.startsWith(`${k} `) || l.startsWith(`${k}\t`))
      .map((l) => l.slice(k.length).trim());
  let servers = o.dns?.length ? [...o.dns] : field('nameserver').filter((s) => !LOOPBACK_NS.test(s));
  if (!servers.length) servers = ['8.8.8.8', '8.8.4.4'];
  const search = o.search?.length ? o.search.join(' ') : field('search').at(-1);
  const options = o.options?.length ? o.options.join(' ') : field('options').join(' ');
  const out = servers.map((s) => `nameserver ${s}`);
  if (search) out.push(`search ${search}`);
  if (options) out.push(`options ${options}`);
  return `${out.join('\n')}\n`;
}

/** The three files' paths in `dir`. */
export function networkFilePaths(dir: string): { hosts: string; hostname: string; resolvConf: string } {
  return { hosts: join(dir, 'hosts'), hostname: join(dir, 'hostname'), resolvConf: join(dir, 'resolv.conf') };
}

/**
 * Create `dir` and the three files empty, so the caller can bind-mount them into the container
 * when it creates it; {@link attachNetwork} fills them later, in place.
 */
export function prepareNetworkFiles(dir: string): { hosts: string; hostname: string; resolvConf: string } {
  mkdirSync(dir, { recursive: true });
  const paths = networkFilePaths(dir);
  for (const p of Object.values(paths)) writeFileSync(p, '', { mode: 0o644, flag: 'a' });
  return paths;
}

/**
 * Write the three files into `dir` (created if missing); returns their paths. Written in place
 * (truncate and write the same inode), not renamed over: a bind mount made at create time refers
 * to the inode, and a renamed-over file would leave the container the old one.
 */
export function writeNetworkFiles(
  dir: string,
  texts: { hosts: string; hostname: string; resolvConf: string },
): { hosts: string; hostname: string; resolvConf: string } {
  mkdirSync(dir, { recursive: true });
  const paths = networkFilePaths(dir);
  writeFileSync(paths.hosts, texts.hosts, { mode: 0o644 });
  writeFileSync(paths.hostname, `${texts.hostname}\n`, { mode: 0o644 });
  writeFileSync(paths.resolvConf, texts.resolvConf, { mode: 0o644 });
  return paths;
}
