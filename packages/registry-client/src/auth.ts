/**
 * Credentials: the `WWW-Authenticate` challenge parser, and Docker's `config.json`
 * (`auths`, `credsStore`, `credHelpers`) read and written the way `docker login` does.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { RegistryError } from './errors.js';

/** One challenge of a `WWW-Authenticate` header: `Bearer realm="…",service="…"`. */
export interface Challenge {
  /** The scheme, lowercased: `bearer`, `basic`. */
  scheme: string;
  /** The auth-params, names lowercased, values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): several challenges, quoted values with
 * commas and `\"` escapes, token68 values (kept as `params['']`).
 */
export function parseWWWAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skip = (set: string) => {
    while (i < n && set.includes(header[i] as string)) i++;
  };
  const token = (): string => {
    const s = i;
    while (i < n && TOKEN_CHAR.test(header[i] as string)) i++;
    return header.slice(s, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skip(' \t,');
    if (i >= n) break;
    const start = i;
    const name = token();
    if (name === '') {
      i++; // a stray character: skip it
      continue;
    }
    let j = i;
    while (j < n && (header[j] === ' ' || header[j] === '\t')) j++;
    if (header[j] === '=' && current) {
      if (/^=+\s*(,|$)/.test(header.slice(j))) {
        // token68 (base64 with = padding)
        i = j;
        while (i < n && header[i] === '=') i++;
        current.params[''] = header.slice(start, i);
        continue;
      }
      // name=value: a param of the current challenge
      i = j + 1;
      skip(' \t');
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++; // the closing quote
      } else {
        const s = i;
        while (i < n && header[i] !== ',' && header[i] !== ' ' && header[i] !== '\t') i++;
        value = header.slice(s, i);
      }
      current.params[name.toLowerCase()] = value;
    } else {
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/** A user name and password (or a registry token as password). */
export interface Credentials {
  username: string;
  password: string;
}

/** Where credentials come from for a registry host; `undefined` means anonymous. */
export type CredentialSource = (host: string) => Promise<Credentials | undefined>;

/** The key Docker uses for Docker Hub in `auths`. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

/** The path of Docker's `config.json`: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

/** How a registry host is written as a key of `auths`: Docker Hub's legacy URL, otherwise the host. */
export function authKey(host: string): string {
  return isDockerHub(host) ? DOCKER_HUB_AUTH_KEY : host;
}

function isDockerHub(host: string): boolean {
  return ['docker.io', 'index.docker.io', 'registry-1.docker.io', DOCKER_HUB_AUTH_KEY].includes(host);
}

/** `https://host:5000/v1/` → `host:5000` (keys of `auths` are written in many ways). */
function normaliseKey(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//i, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  return isDockerHub(k) ? 'docker.io' : k;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

async function readConfig(path: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new RegistryError('Auth', `read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (text.trim() === '') return {};
  try {
    const doc = JSON.parse(text) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not an object');
    return doc as DockerConfigFile;
  } catch {
    throw new RegistryError('Auth', `${path}: not a JSON object (Docker's config.json format)`);
  }
}

function runHelper(helper: string, action: 'get', input: string): Promise<string> {
  const bin = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = execFile(bin, [action], { timeout: 30_000, maxBuffer: 1 << 20 }, (err, stdout) => {
      if (!err) {
        resolve(stdout);
        return;
      }
      const code = (err as NodeJS.ErrnoException).code;
      // Never echo the helper's output: it may hold the secret.
      if (code === 'ENOENT')
        reject(
          new RegistryError(
            'Auth',
            `credential helper ${bin} is configured in Docker's config.json but not installed; install it, remove the credsStore/credHelpers entry, or use DOCKER_CONFIG=DIR with nsinit login`,
          ),
        );
      else if (/credentials not found/i.test(String(stdout))) resolve('');
      else reject(new RegistryError('Auth', `credential helper ${bin} failed (exit ${String(code)})`));
    });
    child.stdin?.end(input);
  });
}

/**
 * Credentials for `host` from Docker's config file: `credHelpers[host]`, then `credsStore`
 * (both by running `docker-credential-<name> get`), then `auths` (`auth` = base64 user:pass).
 */
export async function dockerCredentials(
  host: string,
  configPath: string = dockerConfigPath(),
): Promise<Credentials | undefined> {
  const cfg = await readConfig(configPath);
  const want = normaliseKey(host);
  const helper =
    Object.entries(cfg.credHelpers ?? {}).find(([k]) => normaliseKey(k) === want)?.[1] ?? cfg.credsStore;
  if (helper) {
    const out = await runHelper(helper, 'get', isDockerHub(host) ? DOCKER_HUB_AUTH_KEY : host);
    if (out.trim() === '') return undefined;
    let doc: { Username?: unknown; Secret?: unknown };
    try {
      doc = JSON.parse(out) as typeof doc;
    } catch {
      throw new RegistryError('Auth', `credential helper docker-credential-${helper}: output is not JSON`);
    }
    if (typeof doc.Username !== 'string' || typeof doc.Secret !== 'string') return undefined;
    if (doc.Username === '<token>')
      throw new RegistryError(
        'Auth',
        `credential helper docker-credential-${helper} gave an identity token for ${host}; identity tokens are not supported`,
      );
    return { username: doc.Username, password: doc.Secret };
  }
  for (const [key, entry] of Object.entries(cfg.auths ?? {})) {
    if (normaliseKey(key) !== want || !entry) continue;
    if (typeof entry.auth === 'string' && entry.auth !== '') {
      const text = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = text.indexOf(':');
      if (colon < 0)
        throw new RegistryError('Auth', `${configPath}: auths["${key}"].auth is not base64(user:password)`);
      return { username: text.slice(0, colon), password: text.slice(colon + 1) };
    }
    if (typeof entry.username === 'string' && typeof entry.password === 'string')
      return { username: entry.username, password: entry.password };
    if (typeof entry.identitytoken === 'string')
      throw new RegistryError(
        'Auth',
        `${configPath}: auths["${key}"] holds an identity token; identity tokens are not supported`,
      );
  }
  return undefined;
}

async function writeConfig(path: string, cfg: DockerConfigFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, `${JSON.stringify(cfg, null, '\t')}\n`, { mode: 0o600 });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new RegistryError('Auth', `write ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function refuseHelpers(cfg: DockerConfigFile, host: string, path: string): void {
  const want = normaliseKey(host);
  const helper =
    Object.entries(cfg.credHelpers ?? {}).find(([k]) => normaliseKey(k) === want)?.[1] ?? cfg.credsStore;
  if (helper)
    throw new RegistryError(
      'Auth',
      `${path} sends credentials for ${host} to the credential helper "${helper}"; nsinit cannot store credentials in a helper: use DOCKER_CONFIG=DIR for a separate config, or remove the credsStore/credHelpers entry`,
    );
}

/** Stores credentials for `host` in `auths` (file mode 0600), keeping everything else in the file. */
export async function storeDockerCredentials(
  host: string,
  creds: Credentials,
  configPath: string = dockerConfigPath(),
): Promise<void> {
  const cfg = await readConfig(configPath);
  refuseHelpers(cfg, host, configPath);
  const auths = { ...(cfg.auths ?? {}) };
  for (const k of Object.keys(auths)) if (normaliseKey(k) === normaliseKey(host)) delete auths[k];
  auths[authKey(host)] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') };
  await writeConfig(configPath, { ...cfg, auths });
}

/** Removes the credentials of `host` from `auths`; returns whether there were any. */
export async function removeDockerCredentials(
  host: string,
  configPath: string = dockerConfigPath(),
): Promise<boolean> {
  const cfg = await readConfig(configPath);
  const auths = { ...(cfg.auths ?? {}) };
  let found = false;
  for (const k of Object.keys(auths))
    if (normaliseKey(k) === normaliseKey(host)) {
      delete auths[k];
      found = true;
    }
  if (found) await writeConfig(configPath, { ...cfg, auths });
  return found;
}
