import { ImageError } from './errors.js';
import type { Descriptor, Index, Platform } from './schema.js';

/** Go's GOARCH names for Node's `process.arch`. */
const GOARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

/** The platform of this machine in OCI terms: `{ os: 'linux', architecture: 'amd64' }` (arm64 gets variant v8). */
export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  const p: Platform = { os: process.platform, architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  return p;
}

/**
 * Parses `os/arch[/variant]` (`linux/arm64/v8`, `linux/amd64`).
 * @throws ImageError `InvalidReference` naming the input.
 */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p)))
    throw new ImageError(
      'InvalidReference',
      `invalid platform "${text}": expected os/arch[/variant], e.g. linux/arm64/v8`,
    );
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  const p: Platform = {
    os,
    architecture: architecture === 'x86_64' ? 'amd64' : architecture === 'aarch64' ? 'arm64' : architecture,
  };
  if (variant !== undefined) p.variant = variant;
  return p;
}

/** `linux/amd64`, `linux/arm64/v8`. */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function normVariant(p: Platform): string | undefined {
  if (p.architecture === 'arm64' && (p.variant === undefined || p.variant === 'v8')) return 'v8';
  return p.variant;
}

/** True when a manifest for `have` runs on `want` (os and architecture equal; variant equal when `want` names one). */
export function platformMatches(have: Platform, want: Platform): boolean {
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  const wv = normVariant(want);
  return wv === undefined || normVariant(have) === wv;
}

/**
 * Chooses the manifest for `want` (the host by default) from an index, skipping attestation
 * manifests (`unknown/unknown`). Among several matches the first wins, as in Docker.
 * @throws ImageError `NoMatchingPlatform` listing what the index offers.
 */
export function selectManifest(index: Index, want: Platform = hostPlatform(), what = 'index'): Descriptor {
  const candidates = index.manifests.filter((m) => m.platform && m.platform.os !== 'unknown');
  const hit = candidates.find((m) => m.platform && platformMatches(m.platform, want));
  if (hit) return hit;
  if (index.manifests.length === 1 && !index.manifests[0]?.platform) return index.manifests[0] as Descriptor;
  const offered = candidates.map((m) => formatPlatform(m.platform as Platform)).join(', ') || 'no platforms';
  throw new ImageError(
    'NoMatchingPlatform',
    `${what}: no manifest for ${formatPlatform(want)} (it has ${offered})`,
  );
}
