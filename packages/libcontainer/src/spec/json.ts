/**
 * Locating JSON syntax errors. V8's `JSON.parse` messages differ between Node
 * versions and do not always carry a position (and may quote several lines of
 * input), so when parsing fails we rescan the text to find the first error.
 * Internal to the spec module.
 */

/** Where and why a JSON text is invalid. `line` and `column` are 1-based. */
export interface JsonSyntaxError {
  offset: number;
  line: number;
  column: number;
  reason: string;
}

/**
 * Parse JSON text (a leading UTF-8 byte order mark is ignored). Returns the
 * value, or the location of the first syntax error.
 */
export function parseJson(
  text: string,
): { ok: true; value: unknown } | { ok: false; error: JsonSyntaxError } {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch (err) {
    const found = findJsonError(body);
    const shift = body.length === text.length ? 0 : 1;
    if (found) return { ok: false, error: locate(text, found.offset + shift, found.reason) };
    // Should not happen: the scanner accepts exactly what JSON.parse accepts.
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, error: locate(text, 0, reason) };
  }
}

function locate(text: string, offset: number, reason: string): JsonSyntaxError {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { offset, line, column: offset - lineStart + 1, reason };
}

function describeChar(text: string, i: number): string {
  if (i >= text.length) return 'end of input';
  const cp = text.codePointAt(i) ?? 0;
  if (cp < 0x20 || cp === 0x7f)
    return `control character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return `'${String.fromCodePoint(cp)}'`;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const HEX4 = /[0-9a-fA-F]{4}/y;

function isDigit(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c >= 0x30 && c <= 0x39;
}

/**
 * Scan `text` as JSON (RFC 8259) and return the offset and reason of the
 * first syntax error, or undefined if it is valid. Iterative, so deeply
 * nested input cannot overflow the stack.
 */
export function findJsonError(text: string): { offset: number; reason: string } | undefined {
  let i = 0;
  const n = text.length;
  // Containers being parsed: '{' or '['.
  const stack: number[] = [];
  const fail = (reason: string, at = i) => ({ offset: at, reason });
  const skipWs = () => {
    while (i < n && WS.has(text.charCodeAt(i))) i++;
  };

  // Scan a string starting at text[i] === '"'; returns an error or undefined.
  const scanString = (): { offset: number; reason: string } | undefined => {
    const start = i;
    i++;
    for (;;) {
      if (i >= n) return fail('unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return undefined;
      }
      if (c < 0x20) return fail(`${describeChar(text, i)} in string`);
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === undefined) return fail('unterminated string', start);
        if ('"\\/bfnrt'.includes(e)) {
          i += 2;
        } else if (e === 'u') {
          HEX4.lastIndex = i + 2;
          if (!HEX4.test(text)) return fail('invalid \\u escape in string');
          i += 6;
        } else {
          return fail(`invalid escape '\\${e}' in string`);
        }
        continue;
      }
      i++;
    }
  };

  const digits = () => {
    const start = i;
    while (isDigit(text, i)) i++;
    return i > start;
  };

  // Scan a number starting at text[i] ('-' or a digit).
  const scanNumber = (): { offset: number; reason: string } | undefined => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else if (!digits()) return fail(`expected a digit after '-', got ${describeChar(text, i)}`);
    if (text[i] === '.') {
      i++;
      if (!digits()) return fail(`expected a digit after '.', got ${describeChar(text, i)}`);
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!digits()) return fail(`expected a digit in the exponent, got ${describeChar(text, i)}`);
    }
    return undefined;
  };

  // Scan one value; containers push onto the stack and return.
  const scanValue = (): { offset: number; reason: string } | undefined => {
    skipWs();
    if (i >= n) return fail('unexpected end of input, expected a value');
    const c = text[i];
    if (c === '{' || c === '[') {
      stack.push(text.charCodeAt(i));
      i++;
      return undefined;
    }
    if (c === '"') return scanString();
    const word = c === 't' ? 'true' : c === 'f' ? 'false' : c === 'n' ? 'null' : undefined;
    if (word !== undefined) {
      for (let j = 1; j < word.length; j++) {
        if (text[i + j] !== word[j]) return fail(`invalid literal (expected '${word}')`, i + j);
      }
      i += word.length;
      return undefined;
    }
    if (c === '-' || isDigit(text, i)) return scanNumber();
    return fail(`expected a value, got ${describeChar(text, i)}`);
  };

  // State after a value: close containers / expect ',' as needed.
  // `fresh` is true right after '{' or '[' was pushed.
  let err = scanValue();
  if (err) return err;
  let fresh = stack.length > 0;
  for (;;) {
    const top = stack[stack.length - 1];
    if (top === undefined) break;
    skipWs();
    const closer = top === 0x7b ? '}' : ']';
    if (fresh && text[i] === closer) {
      stack.pop();
      i++;
      fresh = false;
      continue;
    }
    if (!fresh) {
      if (i >= n) return fail(`unexpected end of input, expected ',' or '${closer}'`);
      if (text[i] === closer) {
        stack.pop();
        i++;
        continue;
      }
      if (text[i] !== ',') return fail(`expected ',' or '${closer}', got ${describeChar(text, i)}`);
      i++;
      skipWs();
    }
    if (top === 0x7b) {
      if (i >= n) return fail("unexpected end of input, expected a property name or '}'");
      if (text[i] !== '"') {
        return fail(`expected a property name in double quotes, got ${describeChar(text, i)}`);
      }
      err = scanString();
      if (err) return err;
      skipWs();
      if (text[i] !== ':') return fail(`expected ':', got ${describeChar(text, i)}`);
      i++;
    }
    const depth = stack.length;
    err = scanValue();
    if (err) return err;
    fresh = stack.length > depth;
  }
  skipWs();
  if (i < n) return fail(`unexpected ${describeChar(text, i)} after the end of the JSON value`);
  return undefined;
}
