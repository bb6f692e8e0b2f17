import {
  closeSync,
  constants,
  type Dirent,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { CgroupError, errnoOf, fsError } from './errors.js';

const WRITE_FLAGS = constants.O_WRONLY | constants.O_TRUNC;

/** Write `data` to a cgroup file in a single write(2); never creates the file. */
export function writeFile(file: string, data: string): void {
  let fd: number;
  try {
    fd = openSync(file, WRITE_FLAGS);
  } catch (err) {
    throw fsError('write', file, err, data);
  }
  try {
    writeSync(fd, data);
  } catch (err) {
    throw fsError('write', file, err, data);
  } finally {
    closeSync(fd);
  }
}

/** Read a cgroup file as text. */
export function readFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw fsError('read', file, err);
  }
}

/** Read a cgroup file, or return `undefined` when it does not exist. */
export function readFileIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENODEV') return undefined;
    throw fsError('read', file, err);
  }
}

/** Whether a path exists. */
export function exists(p: string): boolean {
  return existsSync(p);
}

/** Parse a flat-keyed file such as `memory.events` or `cgroup.events` (`key value` lines). */
export function parseKeyed(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0) out.set(line.slice(0, sp), line.slice(sp + 1).trim());
  }
  return out;
}

/** Read one numeric key of a flat-keyed file; 0 when the key is absent. */
export function readKeyedNumber(file: string, key: string): number {
  const value = parseKeyed(readFile(file)).get(key);
  if (value === undefined) return 0;
  const n = Number(value);
  if (!Number.isFinite(n)) {
    throw new CgroupError('System', 'read', `read ${file}: unexpected value "${value}" for ${key}`, {
      path: file,
    });
  }
  return n;
}

/** All cgroup directories at and below `dir`, deepest first (children before parents). */
export function cgroupTreeDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw fsError('read', d, err);
    }
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
    out.push(d);
  };
  walk(dir);
  return out;
}

/** The pids listed in `cgroup.procs` of `dir` and of every cgroup below it. Missing dirs yield nothing. */
export function procsRecursive(dir: string): number[] {
  const pids: number[] = [];
  for (const d of cgroupTreeDeepestFirst(dir)) {
    const text = readFileIfExists(join(d, 'cgroup.procs'));
    if (text === undefined) continue;
    for (const line of text.split('\n')) {
      const n = Number.parseInt(line, 10);
      if (Number.isInteger(n) && n > 0) pids.push(n);
    }
  }
  return pids;
}

// Made on first use: nsinit's V8 startup snapshot cannot hold a SharedArrayBuffer.
let sleepCell: Int32Array | undefined;

/** Block the thread for `ms` milliseconds (the freezer API is synchronous). */
export function sleepSync(ms: number): void {
  sleepCell ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** Resolve after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
