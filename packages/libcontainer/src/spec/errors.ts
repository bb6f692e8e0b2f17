/**
 * Errors raised while reading or validating an OCI bundle's `config.json`
 * (and, by extension, other OCI JSON documents such as `state.json`).
 */

/** One problem found in a configuration document. */
export interface ConfigIssue {
  /**
   * Where the problem is, as a JSON path printed with dots and `[index]`,
   * e.g. `linux.namespaces[2].type`. Empty for the document as a whole
   * (unreadable file, invalid JSON, top level not an object).
   */
  path: string;
  /** What is wrong, e.g. `expected integer, got string` or `required`. */
  message: string;
}

/**
 * An invalid, unreadable or malformed configuration.
 *
 * `message` is a single line describing the first issue, prefixed by the
 * source (a file path, or `config.json` when parsing an in-memory value):
 *
 * ```text
 * config.json: linux.namespaces[2].type: invalid value "foo" (expected one of pid, network, ...)
 * /run/bundle/config.json: invalid JSON at line 3, column 5 (offset 27): expected a value, got '}'
 * ```
 *
 * All issues found (not only the first) are in `issues`.
 */
export class ConfigError extends Error {
  readonly code = 'InvalidConfig';
  readonly issues: ConfigIssue[];
  readonly source?: string;

  constructor(issues: ConfigIssue[], source?: string, options?: { cause?: unknown }) {
    super(formatConfigMessage(issues, source), options);
    this.name = 'ConfigError';
    this.issues = issues;
    if (source !== undefined) this.source = source;
  }
}

/** `source: path: message` for the first issue (parts that are empty are left out). */
export function formatConfigMessage(issues: readonly ConfigIssue[], source?: string): string {
  const first = issues[0] ?? { path: '', message: 'invalid configuration' };
  let text = first.path ? `${first.path}: ${first.message}` : first.message;
  if (source) text = `${source}: ${text}`;
  return oneLine(text);
}

/**
 * Print a path of keys and indexes as `a.b[2].c`; keys that are not plain
 * identifiers are quoted: `annotations["org.example.key"]`.
 */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'symbol') out += `[${String(seg)}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}
