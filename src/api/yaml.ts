// A small deterministic YAML emitter for JSON-like data, used to write the CRD manifests in `crds/`.
// Block style throughout, keys sorted, strings left plain only when no YAML 1.1 or 1.2 parser could
// read them as anything but the same string; multi-line strings become literal blocks.

/** Options of {@linkcode toYaml}. */
export interface YamlOptions {
  /** Sort mapping keys (default true), which makes the output independent of construction order. */
  sortKeys?: boolean;
}

/**
 * Renders JSON-like data (objects, arrays, strings, finite numbers, booleans, null) as block YAML that
 * parses back to an equal value. Object keys whose value is `undefined` are left out, as in JSON.
 *
 * @example
 * ```ts
 * toYaml({ names: ["a", "yes"], port: 80 }); // "names:\n- a\n- \"yes\"\nport: 80\n"
 * ```
 */
export function toYaml(value: unknown, options: YamlOptions = {}): string {
  const lines: string[] = [];
  emit(value, 0, options.sortKeys ?? true, lines, "$");
  return lines.join("\n") + "\n";
}

function emit(value: unknown, indent: number, sort: boolean, out: string[], path: string): void {
  const pad = " ".repeat(indent);
  if (isCollection(value) && !isEmpty(value)) {
    if (Array.isArray(value)) emitSequence(value, indent, sort, out, path);
    else emitMapping(value as Record<string, unknown>, indent, sort, out, path);
    return;
  }
  const [head, ...block] = inline(value, indent, path);
  out.push(pad + head, ...block);
}

function emitMapping(
  value: Record<string, unknown>,
  indent: number,
  sort: boolean,
  out: string[],
  path: string,
): void {
  const pad = " ".repeat(indent);
  const keys = Object.keys(value).filter((k) => value[k] !== undefined);
  if (sort) keys.sort();
  for (const key of keys) {
    const child = value[key];
    const childPath = `${path}.${key}`;
    const label = pad + scalarString(key) + ":";
    if (isCollection(child) && !isEmpty(child)) {
      out.push(label);
      // Sequences under a key are not indented further, as kubectl and controller-gen write them.
      emit(child, Array.isArray(child) ? indent : indent + 2, sort, out, childPath);
    } else {
      const [head, ...block] = inline(child, indent + 2, childPath);
      out.push(`${label} ${head}`, ...block);
    }
  }
}

function emitSequence(value: unknown[], indent: number, sort: boolean, out: string[], path: string): void {
  const pad = " ".repeat(indent);
  value.forEach((item, i) => {
    const start = out.length;
    // Render the item one level deeper, then turn the first line's indentation into the "- " marker.
    emit(item === undefined ? null : item, indent + 2, sort, out, `${path}[${i}]`);
    out[start] = pad + "- " + out[start].slice(indent + 2);
  });
}

function isCollection(value: unknown): value is object {
  return typeof value === "object" && value !== null;
}

function isEmpty(value: object): boolean {
  return Array.isArray(value) ? value.length === 0 : Object.values(value).every((v) => v === undefined);
}

/**
 * A value that fits after `key: ` or `- `: a scalar, an empty collection, or the header of a literal
 * block followed by its lines (indented by `indent`).
 */
function inline(value: unknown, indent: number, path: string): string[] {
  if (value === null || value === undefined) return ["null"];
  if (typeof value === "boolean") return [String(value)];
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`cannot write ${value} at ${path} as YAML: not finite`);
    return [String(value)];
  }
  if (typeof value === "string") {
    // At the top level a line such as "---" inside the block would end the document.
    if (indent > 0 && literalBlockFits(value)) return literalBlock(value, indent);
    return [scalarString(value)];
  }
  if (Array.isArray(value)) return ["[]"];
  if (isPlainObject(value)) return ["{}"];
  throw new TypeError(
    `cannot write a ${describe(value)} at ${path} as YAML: only JSON-like data is supported`,
  );
}

function isPlainObject(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (typeof value === "object" && value !== null) return value.constructor?.name ?? "object";
  return typeof value;
}

// Characters YAML accepts unescaped (c-printable minus tab, CR and line feed, which we always escape).
const PRINTABLE = /^[\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]*$/u;
// Scalars some YAML parser (1.1 or 1.2, js-yaml's default schema included) resolves to a non-string.
const SPECIAL_WORDS = /^(?:~|null|y|yes|n|no|true|false|on|off|<<|=)$/i;
// Numbers, timestamps, sexagesimals, .inf, .nan: anything that starts like a number is quoted.
const NUMBER_LIKE = /^[-+]?\.?[0-9]|^[-+]?\.(?:inf|nan)$/i;
const INDICATOR_START = /^[-?:,[\]{}#&*!|>'"%@`\s]/;

/** Whether a string can be written without quotes and read back as the same string. */
export function isPlainSafe(text: string): boolean {
  return text.length > 0 &&
    PRINTABLE.test(text) &&
    !INDICATOR_START.test(text) &&
    !/\s$/.test(text) &&
    !text.includes(": ") &&
    !text.includes(" #") &&
    !text.endsWith(":") &&
    !SPECIAL_WORDS.test(text) &&
    !NUMBER_LIKE.test(text);
}

/** A string as a single-line YAML scalar: plain when safe, else double-quoted. */
function scalarString(text: string): string {
  if (isPlainSafe(text)) return text;
  // A JSON string is a valid YAML double-quoted scalar once the characters YAML does not print are escaped.
  return JSON.stringify(text).replace(
    /[\u007f-\u009f\ufffe\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

function literalBlockFits(text: string): boolean {
  if (!text.includes("\n")) return false;
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  if (body.endsWith("\n") || body === "") return false; // several trailing line breaks: keep it quoted
  if (!PRINTABLE.test(body.replaceAll("\n", ""))) return false;
  // The first non-empty line fixes the block's indentation, so it must not start with white space.
  const first = body.split("\n").find((line) => line.length > 0) ?? "";
  return !/^\s/.test(first);
}

function literalBlock(text: string, indent: number): string[] {
  const keep = text.endsWith("\n");
  const body = keep ? text.slice(0, -1) : text;
  const pad = " ".repeat(indent);
  return [keep ? "|" : "|-", ...body.split("\n").map((line) => (line === "" ? "" : pad + line))];
}
