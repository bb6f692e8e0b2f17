/**
 * Image references as Docker normalises them: `busybox` is
 * `docker.io/library/busybox:latest`, `localhost:5000/a/b@sha256:…` keeps its registry.
 */
import { type Digest, parseDigest } from './digest.js';
import { ImageError } from './errors.js';

/** The registry Docker uses for names without one, as it is written in references. */
export const DEFAULT_DOMAIN = 'docker.io';
/** The host Docker actually contacts for {@link DEFAULT_DOMAIN}. */
export const DEFAULT_REGISTRY_HOST = 'registry-1.docker.io';

/** A parsed, normalised image reference. */
export interface Reference {
  /** The registry host, with its port when one was given: `docker.io`, `127.0.0.1:5000`. */
  readonly domain: string;
  /** The repository inside the registry: `library/busybox`. */
  readonly path: string;
  /** The tag; `latest` when neither a tag nor a digest was given. */
  readonly tag: string | undefined;
  /** The digest, when the reference pins one. */
  readonly digest: Digest | undefined;
  /** `domain/path`. */
  readonly name: string;
  /** The full normalised reference: `docker.io/library/busybox:latest`, `name@sha256:…`, `name:tag@sha256:…`. */
  toString(): string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;

function bad(input: string, why: string): ImageError {
  return new ImageError('InvalidReference', `invalid image reference "${input}": ${why}`);
}

function checkDomain(input: string, domain: string): void {
  const ipv6 = /^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(domain);
  if (ipv6) return;
  const [host, port, extra] = domain.split(':');
  if (extra !== undefined || !host) throw bad(input, `"${domain}" is not a registry host[:port]`);
  if (port !== undefined && !/^\d{1,5}$/.test(port)) throw bad(input, `"${port}" is not a port number`);
  for (const part of host.split('.'))
    if (!DOMAIN_COMPONENT.test(part)) throw bad(input, `"${domain}" is not a registry host[:port]`);
}

function make(domain: string, path: string, tag: string | undefined, digest: Digest | undefined): Reference {
  const name = `${domain}/${path}`;
  const text = `${name}${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
  return { domain, path, tag, digest, name, toString: () => text };
}

/**
 * Parses and normalises a reference the way `docker pull` does.
 * @throws ImageError `InvalidReference` saying which part is wrong.
 */
export function parseReference(input: string): Reference {
  if (input.length === 0) throw bad(input, 'it is empty');
  if (/\s/.test(input)) throw bad(input, 'it contains white space');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1));
    } catch (e) {
      throw bad(input, (e as Error).message.replace(/^digest: /, ''));
    }
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      throw bad(input, `tag "${tag}" must be 1-128 of [A-Za-z0-9_.-], not starting with . or -`);
  }
  if (rest.length === 0) throw bad(input, 'the repository name is empty');

  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes('.') ||
      first.includes(':') ||
      first === 'localhost' ||
      first !== first.toLowerCase()
    ) {
      domain = first;
      path = rest.slice(slash + 1);
      checkDomain(input, domain);
    }
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  if (path !== path.toLowerCase()) throw bad(input, 'repository name must be lowercase');
  for (const c of path.split('/'))
    if (!COMPONENT.test(c))
      throw bad(
        input,
        `"${c}" is not a repository name component (lowercase letters, digits, and . _ __ - between them)`,
      );
  if (domain.length + 1 + path.length > 255)
    throw bad(input, 'the repository name is longer than 255 characters');
  if (tag === undefined && digest === undefined) tag = 'latest';
  return make(domain, path, tag, digest);
}

/** The short form Docker prints: `busybox:latest`, `me/app:1`, `127.0.0.1:5000/x:y`. */
export function familiarName(ref: Reference): string {
  let name = ref.name;
  if (ref.domain === DEFAULT_DOMAIN) {
    name = ref.path.startsWith('library/') && ref.path.split('/').length === 2 ? ref.path.slice(8) : ref.path;
  }
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The same repository with another tag (and no digest). */
export function withTag(ref: Reference, tag: string): Reference {
  if (!TAG.test(tag))
    throw bad(tag, `tag "${tag}" must be 1-128 of [A-Za-z0-9_.-], not starting with . or -`);
  return make(ref.domain, ref.path, tag, undefined);
}

/** The same repository pinned to a digest (the tag is dropped). */
export function withDigest(ref: Reference, digest: Digest): Reference {
  return make(ref.domain, ref.path, undefined, digest);
}
