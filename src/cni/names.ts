// The CNI rules for the names a runtime passes (libcni's pkg/utils): container ID, interface name and network
// name. Plain functions with no imports, so that the plugins' protocol layer (skel.ts) and the agent's socket
// API apply one and the same rule. Each returns what is wrong with the name, or undefined when it is valid.

/** Container IDs and network names: a letter or digit, then letters, digits, "_", "." and "-". */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/** IFNAMSIZ (16) less the terminating NUL: the kernel's limit, in bytes. */
export const MAX_IFNAME_BYTES = 15;

/**
 * What is wrong with an interface name (CNI_IFNAME), phrased to follow the name: empty, longer than 15 bytes,
 * "." or "..", or containing "/", ":" or whitespace (the kernel's rules, as libcni's ValidateInterfaceName).
 *
 * ```ts
 * ifNameProblem("eth0"); // undefined
 * ifNameProblem("../eth0"); // 'contains "/", ":" or whitespace'
 * ```
 */
export function ifNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > MAX_IFNAME_BYTES) {
    return `is ${bytes} bytes long; the kernel allows at most ${MAX_IFNAME_BYTES}`;
  }
  if (name === "." || name === "..") return `is "${name}"`;
  if (/[/:\s]/u.test(name)) return `contains "/", ":" or whitespace`;
  return undefined;
}

/**
 * What is wrong with a container ID (CNI_CONTAINERID): empty, or characters other than letters, digits,
 * "_", "." and "-" (or not starting with a letter or digit).
 */
export function containerIdProblem(id: string): string | undefined {
  if (id === "") return "is empty";
  if (!NAME_RE.test(id)) return `has invalid characters; expected letters, digits, "_", "." and "-"`;
  return undefined;
}

/** What is wrong with a network name (the configuration's `name`), by the same rule as container IDs. */
export function networkNameProblem(name: string): string | undefined {
  return containerIdProblem(name);
}
