/**
 * NAT through nftables, by running `nft` (execa). Everything lives in one table of our own
 * (family ip, default `nsinit`): NAT base chains `prerouting` and `output` for the containers'
 * DNAT rules (comment `ctr:<id>`), and per bridge a postrouting chain `post-<bridge>` with its
 * masquerade rule (comment `net:<bridge>`). Teardown lists the table with
 * handles and deletes exactly the rules with that comment, so it needs no recorded handles and
 * works after a crash.
 */
import { createHash } from 'node:crypto';
import { ContainerError } from '../errors.js';
import type { PortMapping } from './types.js';

interface NftRule {
  chain: string;
  handle: number;
  comment?: string;
  expr?: unknown[];
}

async function nft(args: readonly string[], input: string | undefined, step: string): Promise<string> {
  const { execa } = await import('execa');
  const r = await execa('nft', [...args], { reject: false, ...(input === undefined ? {} : { input }) });
  if (r.exitCode !== 0) {
    const msg = String(r.stderr || r.stdout || r.message)
      .trim()
      .split('\n')
      .slice(0, 3)
      .join(' | ');
    throw new ContainerError('System', `${step}: nft ${args.join(' ')}: ${msg}`, { step });
  }
  return String(r.stdout);
}

/** The rule comment that marks a container's rules. */
export function containerTag(id: string): string {
  return id.length <= 64
    ? `ctr:${id}`
    : `ctr:sha256:${createHash('sha256').update(id).digest('hex').slice(0, 24)}`;
}

/** The comment of a bridge's masquerade rule. */
export const networkTag = (bridge: string) => `net:${bridge}`;

function checkTable(table: string): void {
  if (!/^[A-Za-z][\w-]{0,30}$/.test(table)) {
    throw new ContainerError('InvalidArgument', `invalid nftables table name "${table}"`);
  }
}

/** The rules of `table` (empty when the table does not exist). */
export async function listRules(table: string): Promise<NftRule[]> {
  checkTable(table);
  const { execa } = await import('execa');
  const r = await execa('nft', ['-j', '-a', 'list', 'table', 'ip', table], { reject: false });
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(String(r.stderr))) return [];
    throw new ContainerError('System', `list nftables table ${table}: ${String(r.stderr).trim()}`);
  }
  const doc = JSON.parse(String(r.stdout)) as { nftables: { rule?: NftRule }[] };
  return doc.nftables.flatMap((x) => (x.rule ? [x.rule] : []));
}

const postChain = (bridge: string) => `post-${bridge}`;

/**
 * Create the table and its NAT chains if missing, and (re)write the bridge's masquerade rule in
 * a postrouting base chain of its own (`post-<bridge>`), flushed and refilled in the same
 * transaction: one `nft` run, idempotent, and a flushed ruleset is repaired on the next attach.
 */
export async function ensureNetworkRules(
  table: string,
  bridge: string,
  subnet: string,
  container?: { id: string; ip: string; ports: readonly PortMapping[] },
): Promise<void> {
  checkTable(table);
  const post = postChain(bridge);
  await nft(
    ['-f', '-'],
    [
      `add table ip ${table}`,
      `add chain ip ${table} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
      `add chain ip ${table} output { type nat hook output priority -100; policy accept; }`,
      `add chain ip ${table} ${post} { type nat hook postrouting priority srcnat; policy accept; }`,
      `flush chain ip ${table} ${post}`,
      `add rule ip ${table} ${post} ip saddr ${subnet} ip daddr != ${subnet} oifname != "${bridge}" masquerade comment "${networkTag(bridge)}"`,
      ...(container ? portRules(table, container.id, container.ip, container.ports) : []),
      '',
    ].join('\n'),
    `nftables table ${table}, masquerade for ${subnet}`,
  );
}

/** Delete a bridge's postrouting chain (and its masquerade rule). */
export async function deleteNetworkChain(table: string, bridge: string): Promise<void> {
  checkTable(table);
  const { execa } = await import('execa');
  const post = postChain(bridge);
  await execa('nft', ['-f', '-'], {
    reject: false,
    input: `flush chain ip ${table} ${post}\ndelete chain ip ${table} ${post}\n`,
  });
}

const isLoopback = (ip: string | undefined) => ip?.startsWith('127.') === true;

/**
 * A container's DNAT rules (added with the network's chains, in one transaction). Connections to a published port from other
 * hosts (prerouting) and from the host's own non-loopback addresses (output) are rewritten to the
 * container; loopback ones are left to the userland proxy (a DNAT from 127.0.0.1 would need
 * route_localnet and a masquerade of loopback sources).
 */
function portRules(table: string, id: string, ip: string, ports: readonly PortMapping[]): string[] {
  const tag = containerTag(id);
  const lines: string[] = [];
  for (const p of ports) {
    if (isLoopback(p.hostIp)) continue;
    const match = p.hostIp
      ? `ip daddr ${p.hostIp} ${p.protocol} dport ${p.hostPort}`
      : `fib daddr type local ${p.protocol} dport ${p.hostPort}`;
    const out = p.hostIp
      ? match
      : `fib daddr type local ip daddr != 127.0.0.0/8 ${p.protocol} dport ${p.hostPort}`;
    const to = `counter dnat to ${ip}:${p.containerPort} comment "${tag}"`;
    lines.push(`add rule ip ${table} prerouting ${match} ${to}`, `add rule ip ${table} output ${out} ${to}`);
  }
  return lines;
}

/** Delete the rules whose comment is one of `tags`; returns how many went. Missing table: 0. */
export async function deleteTaggedRules(table: string, tags: ReadonlySet<string>): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const rules = (await listRules(table)).filter((r) => r.comment !== undefined && tags.has(r.comment));
    if (!rules.length) return 0;
    try {
      await nft(
        ['-f', '-'],
        `${rules.map((r) => `delete rule ip ${table} ${r.chain} handle ${r.handle}`).join('\n')}\n`,
        `delete rules ${[...tags].join(',')}`,
      );
      return rules.length;
    } catch (e) {
      // Someone deleted one of them meanwhile (a concurrent teardown): list again.
      if (attempt >= 2) throw e;
    }
  }
}

/** Delete the table when no bridge chain (`post-*`) and no rule is left in it. */
export async function deleteTableIfEmpty(table: string): Promise<boolean> {
  checkTable(table);
  const { execa } = await import('execa');
  const r = await execa('nft', ['-j', 'list', 'table', 'ip', table], { reject: false });
  if (r.exitCode !== 0) return false;
  const doc = JSON.parse(String(r.stdout)) as { nftables: { rule?: unknown; chain?: { name: string } }[] };
  if (doc.nftables.some((x) => x.rule || x.chain?.name.startsWith('post-'))) return false;
  await execa('nft', ['delete', 'table', 'ip', table], { reject: false });
  return true;
}

/** Packet counts of a container's rules (for tests and diagnostics). */
export async function ruleCounters(table: string, id: string): Promise<number[]> {
  const tag = containerTag(id);
  return (await listRules(table))
    .filter((r) => r.comment === tag)
    .map((r) => {
      const c = (r.expr ?? []).find(
        (x): x is { counter: { packets: number } } => typeof x === 'object' && x !== null && 'counter' in x,
      );
      return c?.counter.packets ?? 0;
    });
}
