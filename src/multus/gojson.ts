// JSON text exactly as Go's encoding/json.Marshal writes it, so that a NetworkAttachmentDefinition's
// `spec.config` is byte-for-byte what upstream Spiderpool writes: struct fields in declaration order (here: the
// insertion order of plain objects), map keys sorted byte-wise (GoMap), HTML-safe string escapes, and Go's
// float formatting. Upstream re-marshals chained plugin configurations through `interface{}`, which turns
// their objects into maps: goValueOf gives the same reading of parsed JSON.

/** A Go map: marshalled with its keys sorted by their UTF-8 bytes, whatever their insertion order. */
export class GoMap {
  constructor(readonly entries: ReadonlyArray<readonly [string, unknown]>) {}
}

/**
 * The value Go's json.Unmarshal into `interface{}` produces from JSON text, as marshal input: every object
 * becomes a GoMap (so its keys come out sorted), numbers are float64 (as in JavaScript).
 */
export function goValueOf(text: string): unknown {
  return toGo(JSON.parse(text));
}

function toGo(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toGo);
  if (v !== null && typeof v === "object") {
    return new GoMap(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toGo(x)] as const));
  }
  return v;
}

/**
 * Marshals like Go's json.Marshal. Plain objects are structs whose fields are written in insertion order;
 * fields whose value is `undefined` or `null` are left out (Go's `omitempty` of a nil pointer; every optional field of
 * upstream's structs is `omitempty`). GoMap entries keep their null values. Throws TypeError on
 * values Go could not marshal either (non-finite numbers, functions, bigints).
 *
 * @example
 * ```ts
 * goMarshal({ type: "tuning", note: "a<b" }); // '{"type":"tuning","note":"a\u003cb"}'
 * goMarshal(new GoMap([["b", 1], ["a", 2]])); // '{"a":2,"b":1}'
 * ```
 */
export function goMarshal(value: unknown): string {
  const out: string[] = [];
  write(value, out);
  return out.join("");
}

function write(v: unknown, out: string[]): void {
  if (v === null || v === undefined) {
    out.push("null");
  } else if (typeof v === "string") {
    out.push(goString(v));
  } else if (typeof v === "number") {
    out.push(goNumber(v));
  } else if (typeof v === "boolean") {
    out.push(v ? "true" : "false");
  } else if (Array.isArray(v)) {
    out.push("[");
    v.forEach((x, i) => {
      if (i > 0) out.push(",");
      write(x, out);
    });
    out.push("]");
  } else if (v instanceof GoMap) {
    const entries = [...v.entries].sort((a, b) => compareUTF8(a[0], b[0]));
    writeFields(entries, out);
  } else if (typeof v === "object") {
    writeFields(
      Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined && x !== null),
      out,
    );
  } else {
    throw new TypeError(`json: unsupported type ${typeof v}`);
  }
}

function writeFields(entries: ReadonlyArray<readonly [string, unknown]>, out: string[]): void {
  out.push("{");
  entries.forEach(([k, x], i) => {
    if (i > 0) out.push(",");
    out.push(goString(k), ":");
    write(x, out);
  });
  out.push("}");
}

/** Byte-wise comparison of the UTF-8 encodings, which is code point order (not UTF-16 code unit order). */
export function compareUTF8(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

const HEX = "0123456789abcdef";

/** A JSON string as Go writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped; invalid UTF-16 becomes U+FFFD. */
export function goString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        out += s[i] + s[i + 1];
        i++;
      } else {
        out += "\\ufffd";
      }
      continue;
    }
    switch (c) {
      case 0x22:
        out += '\\"';
        break;
      case 0x5c:
        out += "\\\\";
        break;
      case 0x08:
        out += "\\b";
        break;
      case 0x0c:
        out += "\\f";
        break;
      case 0x0a:
        out += "\\n";
        break;
      case 0x0d:
        out += "\\r";
        break;
      case 0x09:
        out += "\\t";
        break;
      case 0x3c:
      case 0x3e:
      case 0x26:
      case 0x2028:
      case 0x2029:
        out += "\\u" + c.toString(16).padStart(4, "0");
        break;
      default:
        if (c < 0x20) out += "\\u00" + HEX[c >> 4] + HEX[c & 15];
        else out += s[i];
    }
  }
  return out + '"';
}

/**
 * A float64 as Go's encoder writes it: shortest round-trip digits, plain notation for 1e-6 ≤ |x| < 1e21 and
 * exponent notation (`1e+21`, `1e-7`) outside, which is also JavaScript's choice; only -0 differs.
 */
export function goNumber(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError(`json: unsupported value: ${n}`);
  if (Object.is(n, -0)) return "-0";
  return String(n);
}
