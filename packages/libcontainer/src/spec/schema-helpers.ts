/**
 * Small building blocks for the zod schemas of this module. Internal.
 */
import * as z from 'zod/mini';

/** The JSON type of a value, as used in `got <type>`. */
export function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** A value for a message: strings JSON-quoted, numbers/booleans/null as is, others by type. */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return jsonType(value);
}

/**
 * A loose object (unknown keys are kept at runtime), typed like a plain
 * object: the inferred TypeScript type has no `[key: string]: unknown` index
 * signature, so typos in property names stay compile errors. This is sound:
 * TypeScript object types never promise the absence of extra properties.
 */
export function loose<const T extends z.core.$ZodLooseShape>(shape: T): z.ZodMiniObject<T, z.core.$strip> {
  return z.looseObject(shape) as unknown as z.ZodMiniObject<T, z.core.$strip>;
}

/**
 * An integer in [min, max]; wrong types read `expected integer, got string`.
 *
 * Not `z.int()`, which is limited to safe integers: JSON numbers beyond 2^53
 * lose precision in `JSON.parse` (an rlimit of 2^64-1, RLIM_INFINITY, arrives
 * as 2^64), so 64-bit bounds are compared against the nearest doubles, which
 * is what such values are parsed to anyway.
 */
export function integer(min: number, max: number) {
  return z
    .number({
      error: (iss) =>
        iss.code === 'invalid_type'
          ? iss.input === undefined
            ? 'required'
            : `expected integer, got ${jsonType(iss.input)}`
          : undefined,
    })
    .check(
      z.refine((v: number) => Number.isInteger(v), {
        error: (iss) => `expected integer, got ${showValue(iss.input)}`,
        abort: true,
      }),
      z.gte(min),
      z.lte(max),
    );
}
