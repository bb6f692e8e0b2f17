import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Process, processSchema, type RuntimeConfig, runtimeConfigSchema } from './config.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { PARSE_OPTIONS, toConfigIssues } from './issues.js';
import { parseJson } from './json.js';

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Name used as the prefix of error messages; default `config.json`. */
  source?: string;
  /**
   * Require `process` (with a non-empty `args`), as `create` and `run` do.
   * Default true; pass false to read a config only for its other parts.
   */
  requireProcess?: boolean;
}

/**
 * Validate a decoded `config.json` and return it typed. Unknown properties
 * are kept. Besides the schema, checks what zod cannot express well:
 * duplicate namespace types, device numbers for non-FIFO devices and (by
 * default) the presence of `process` and `process.args`.
 *
 * @throws {ConfigError} listing every issue found; its message describes the first one.
 */
export function parseConfig(input: unknown, opts: ParseConfigOptions = {}): RuntimeConfig {
  const source = opts.source ?? 'config.json';
  const result = runtimeConfigSchema.safeParse(input, PARSE_OPTIONS);
  if (!result.success) throw new ConfigError(toConfigIssues(result.error.issues), source);
  const issues = semanticIssues(result.data, opts.requireProcess ?? true);
  if (issues.length > 0) throw new ConfigError(issues, source);
  return result.data;
}

/**
 * Validate an OCI `process` object, as `nsinit exec --process FILE` reads it.
 *
 * @throws {ConfigError} naming the field, prefixed with `source`.
 */
export function parseProcess(input: unknown, source = 'process.json'): Process {
  const result = processSchema.safeParse(input, PARSE_OPTIONS);
  if (!result.success) throw new ConfigError(toConfigIssues(result.error.issues), source);
  if (result.data.args === undefined || result.data.args.length === 0) {
    throw new ConfigError([{ path: 'args', message: 'must name a program to run' }], source);
  }
  return result.data;
}

/** Read and validate a process.json file (see {@link parseProcess}). */
export function loadProcess(file: string): Process {
  return parseProcess(readJsonFile(file), file);
}

/** Read and decode a JSON file; an unreadable file or invalid JSON is a ConfigError naming the file. */
function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read file: ${describeFsError(err)}` }], file, {
      cause: err,
    });
  }
  const parsed = parseJson(text);
  if (!parsed.ok) {
    const { line, column, offset, reason } = parsed.error;
    throw new ConfigError(
      [{ path: '', message: `invalid JSON at line ${line}, column ${column} (offset ${offset}): ${reason}` }],
      file,
    );
  }
  return parsed.value;
}

/**
 * Read and validate `<bundleDir>/config.json`. A missing or unreadable file
 * and invalid JSON are reported as {@link ConfigError}s naming the file (and,
 * for JSON syntax errors, the line, column and offset).
 */
export function loadConfig(bundleDir: string, opts: Omit<ParseConfigOptions, 'source'> = {}): RuntimeConfig {
  const file = join(bundleDir, 'config.json');
  return parseConfig(readJsonFile(file), { ...opts, source: file });
}

const FS_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  EIO: 'input/output error',
};

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && FS_ERRORS[code]) return `${FS_ERRORS[code]} (${code})`;
  if (code) return code;
  return err instanceof Error ? err.message : String(err);
}

/** Checks on a schema-valid config that zod cannot express well. */
function semanticIssues(config: RuntimeConfig, requireProcess: boolean): ConfigIssue[] {
  const issues: ConfigIssue[] = [];

  if (requireProcess) {
    if (config.process === undefined) {
      issues.push({ path: 'process', message: 'required' });
    } else if (!config.process.args || config.process.args.length === 0) {
      issues.push({ path: 'process.args', message: 'must contain at least one argument' });
    }
  }

  const seen = new Map<string, number>();
  config.linux?.namespaces?.forEach((ns, i) => {
    const first = seen.get(ns.type);
    if (first === undefined) {
      seen.set(ns.type, i);
    } else {
      issues.push({
        path: `linux.namespaces[${i}].type`,
        message: `duplicate namespace type "${ns.type}" (also at linux.namespaces[${first}])`,
      });
    }
  });

  config.linux?.devices?.forEach((dev, i) => {
    if (dev.type === 'p') return;
    for (const key of ['major', 'minor'] as const) {
      if (dev[key] === undefined) {
        issues.push({
          path: `linux.devices[${i}].${key}`,
          message: `required for device type "${dev.type}"`,
        });
      }
    }
  });

  return issues;
}
