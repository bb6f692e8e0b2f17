/**
 * Turning zod issues into short, single-line {@link ConfigIssue}s.
 * Internal to the spec module.
 */
import type * as z from 'zod/mini';
import { type ConfigIssue, formatPath } from './errors.js';
import { jsonType, showValue as show } from './schema-helpers.js';

const EXPECTED_NAMES: Record<string, string> = {
  int: 'integer',
  record: 'object',
  nan: 'number',
};

/**
 * The error map passed to `safeParse`. Checks in `config.ts` that set their
 * own message take precedence over this one.
 */
export const issueMessage: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'required';
      const expected = EXPECTED_NAMES[iss.expected] ?? iss.expected;
      return `expected ${expected}, got ${jsonType(iss.input)}`;
    }
    case 'invalid_value': {
      const values = iss.values.map((v) => (typeof v === 'string' ? v : String(v)));
      return `invalid value ${show(iss.input)} (expected one of ${values.join(', ')})`;
    }
    case 'too_small': {
      if (iss.origin === 'string' && Number(iss.minimum) === 1) return 'must not be empty';
      if (iss.origin === 'array' && Number(iss.minimum) === 1) return 'must not be empty';
      if (iss.origin === 'string' || iss.origin === 'array') {
        const unit = iss.origin === 'string' ? 'characters' : 'elements';
        return `must have at least ${iss.minimum} ${unit}`;
      }
      return `must be ${iss.inclusive === false ? '>' : '>='} ${iss.minimum}, got ${show(iss.input)}`;
    }
    case 'too_big': {
      if (iss.origin === 'string' || iss.origin === 'array') {
        const unit = iss.origin === 'string' ? 'characters' : 'elements';
        return `must have at most ${iss.maximum} ${unit}`;
      }
      return `must be ${iss.inclusive === false ? '<' : '<='} ${iss.maximum}, got ${show(iss.input)}`;
    }
    case 'invalid_format':
      return `invalid value ${show(iss.input)}${iss.pattern ? ` (expected to match ${iss.pattern})` : ''}`;
    case 'unrecognized_keys':
      return `unknown propert${iss.keys.length === 1 ? 'y' : 'ies'} ${iss.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    case 'invalid_key':
      return `invalid key ${show(iss.input)}`;
    case 'invalid_union':
      return `invalid value ${show(iss.input)}`;
    default:
      return undefined;
  }
};

/**
 * The options every parse of these schemas uses: this error map, and no JIT. zod compiles a fast
 * path for each object schema with `new Function` on its first parse; a config is parsed once
 * per process (the CLI), so that code generation costs more than it saves.
 */
export const PARSE_OPTIONS: z.core.ParseContext<z.core.$ZodIssue> = { error: issueMessage, jitless: true };

/** Flatten zod issues (unions and keys carry nested issues) into config issues. */
export function toConfigIssues(
  issues: readonly z.core.$ZodIssue[],
  prefix: PropertyKey[] = [],
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of issues) {
    const path = [...prefix, ...iss.path];
    if ((iss.code === 'invalid_key' || iss.code === 'invalid_element') && iss.issues.length > 0) {
      out.push(...toConfigIssues(iss.issues, path));
      continue;
    }
    out.push({ path: formatPath(path), message: iss.message });
  }
  return out;
}
