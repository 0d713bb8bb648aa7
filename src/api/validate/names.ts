// Name syntax shared by the API: Kubernetes object names (DNS-1123), label keys and values, and pool-name
// globs matched with Go's path.Match semantics (`*`, `?`, `[...]`, `[^...]`, `\` escapes).

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** A DNS-1123 label: lower-case alphanumerics and "-", at most 63 characters (namespace names). */
export function isDNS1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

/** A DNS-1123 subdomain: dot-separated labels, at most 253 characters (most object names). */
export function isDNS1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

/**
 * Why `key` is not a valid label key (`[prefix/]name`, prefix a DNS-1123 subdomain, name ≤ 63 characters of
 * alphanumerics, "-", "_", "." starting and ending alphanumeric), or undefined when it is valid.
 */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    if (prefix === "" || !isDNS1123Subdomain(prefix)) {
      return `label key ${JSON.stringify(key)} has an invalid prefix ${JSON.stringify(prefix)}; ` +
        `the prefix must be a DNS subdomain like "example.com"`;
    }
  }
  if (name === "" || name.length > 63 || !LABEL_NAME.test(name)) {
    return `label key ${JSON.stringify(key)} is invalid; use at most 63 letters, digits, "-", "_" or "." ` +
      `starting and ending with a letter or digit, optionally after a "prefix/"`;
  }
  return undefined;
}

/** Why `value` is not a valid label value (empty, or ≤ 63 characters like a label name), or undefined. */
export function labelValueProblem(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63 || !LABEL_NAME.test(value)) {
    return `label value ${
      JSON.stringify(value)
    } is invalid; use at most 63 letters, digits, "-", "_" or "." ` +
      `starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `nic` is not a usable Linux interface name (1–15 characters, no "/", ":" or whitespace), or undefined. */
export function interfaceNameProblem(nic: string): string | undefined {
  if (nic === "" || nic.length > 15 || /[/\s:]/.test(nic) || nic === "." || nic === "..") {
    return `${
      JSON.stringify(nic)
    } is not a valid interface name; use 1-15 characters without "/", ":" or spaces, ` +
      `e.g. "net1"`;
  }
  return undefined;
}

/**
 * Why `name` is not usable as a pool reference in an annotation, CNI config or SpiderMultusConfig: it must be
 * a Kubernetes object name (DNS-1123 subdomain) or a glob using `*`, `?` and `[...]`. Undefined when valid.
 */
export function poolNameProblem(name: string): string | undefined {
  if (name === "") return "a pool name is empty";
  if (isGlob(name)) {
    if (name.length > 253) return `pattern ${JSON.stringify(name)} is longer than 253 characters`;
    if (!/^[a-z0-9.\-*?[\]^\\]+$/.test(name)) {
      return `pattern ${JSON.stringify(name)} has characters that cannot occur in a pool name; ` +
        `use lower-case letters, digits, "-", "." and the glob characters *, ? and [...]`;
    }
    const bad = globProblem(name);
    if (bad) return `pattern ${JSON.stringify(name)} is not a valid glob: ${bad}`;
    return undefined;
  }
  if (!isDNS1123Subdomain(name)) {
    return `${JSON.stringify(name)} is not a valid pool name; use lower-case letters, digits, "-" and ".", ` +
      `starting and ending with a letter or digit (at most 253 characters), or a glob like "v4-*"`;
  }
  return undefined;
}

/** True when `name` uses glob syntax (`*`, `?`, `[`, `\`) and is therefore matched as a pattern. */
export function isGlob(name: string): boolean {
  return /[*?[\\]/.test(name);
}

/** Why `pattern` is not a valid Go path.Match pattern, or undefined when it is. */
export function globProblem(pattern: string): string | undefined {
  try {
    compileGlob(pattern);
    return undefined;
  } catch (e) {
    if (e instanceof GlobSyntaxError) return e.message;
    throw e;
  }
}

/**
 * Matches `name` against a Go path.Match pattern: `*` any run of characters except "/", `?` one character
 * except "/", `[a-z]` / `[^a-z]` character classes, `\x` a literal x. An invalid pattern matches nothing.
 *
 * ```ts
 * globMatch("v4-*", "v4-blue"); // true
 * globMatch("v4-[ab]?", "v4-c1"); // false
 * ```
 */
export function globMatch(pattern: string, name: string): boolean {
  let tokens: Token[];
  try {
    tokens = compileGlob(pattern);
  } catch (e) {
    if (e instanceof GlobSyntaxError) return false;
    throw e;
  }
  const chars = Array.from(name);
  // reach[j]: the tokens consumed so far can match chars[0..j).
  let reach = new Array<boolean>(chars.length + 1).fill(false);
  reach[0] = true;
  for (const t of tokens) {
    const next = new Array<boolean>(chars.length + 1).fill(false);
    if (t.kind === "star") {
      for (let j = 0; j <= chars.length; j++) {
        if (reach[j]) {
          next[j] = true;
          for (let k = j; k < chars.length && chars[k] !== "/"; k++) next[k + 1] = true;
        }
      }
    } else {
      for (let j = 0; j < chars.length; j++) {
        if (reach[j] && tokenMatches(t, chars[j])) next[j + 1] = true;
      }
    }
    reach = next;
  }
  return reach[chars.length];
}

type Token =
  | { kind: "star" }
  | { kind: "any" }
  | { kind: "char"; c: string }
  | { kind: "class"; negated: boolean; ranges: [string, string][] };

class GlobSyntaxError extends Error {}

function tokenMatches(t: Token, c: string): boolean {
  switch (t.kind) {
    case "any":
      return c !== "/";
    case "char":
      return c === t.c;
    case "class": {
      const cp = c.codePointAt(0)!;
      const hit = t.ranges.some(([lo, hi]) => lo.codePointAt(0)! <= cp && cp <= hi.codePointAt(0)!);
      return hit !== t.negated;
    }
    default:
      return false;
  }
}

function compileGlob(pattern: string): Token[] {
  const p = Array.from(pattern);
  const out: Token[] = [];
  let i = 0;
  const escaped = (): string => {
    if (i >= p.length || p[i] === "-" || p[i] === "]") {
      throw new GlobSyntaxError(`character class needs a character before "${p[i] ?? "end"}"`);
    }
    if (p[i] === "\\") {
      i++;
      if (i >= p.length) throw new GlobSyntaxError(`"\\" at the end escapes nothing`);
    }
    const c = p[i++];
    if (i >= p.length) throw new GlobSyntaxError(`"[" is never closed with "]"`);
    return c;
  };
  while (i < p.length) {
    const c = p[i];
    if (c === "*") {
      out.push({ kind: "star" });
      i++;
    } else if (c === "?") {
      out.push({ kind: "any" });
      i++;
    } else if (c === "\\") {
      i++;
      if (i >= p.length) throw new GlobSyntaxError(`"\\" at the end escapes nothing`);
      out.push({ kind: "char", c: p[i++] });
    } else if (c === "[") {
      i++;
      let negated = false;
      if (p[i] === "^") {
        negated = true;
        i++;
      }
      const ranges: [string, string][] = [];
      for (;;) {
        if (i >= p.length) throw new GlobSyntaxError(`"[" is never closed with "]"`);
        if (p[i] === "]" && ranges.length > 0) {
          i++;
          break;
        }
        const lo = escaped();
        let hi = lo;
        if (p[i] === "-") {
          i++;
          hi = escaped();
        }
        ranges.push([lo, hi]);
      }
      out.push({ kind: "class", negated, ranges });
    } else {
      out.push({ kind: "char", c });
      i++;
    }
  }
  return out;
}
