// Entering a network namespace from this process. setns(2) changes the namespace of the calling thread only, so
// a namespace is entered, used and left inside one synchronous call: no `await` can run in between, so no other
// JavaScript task, timer or spawned child ever runs inside the pod's namespace. If the thread cannot get back to
// its own namespace the process exits: anything it did afterwards would happen in the wrong place.

import { cstr, errno, libc } from "./ffi.ts";
import { NetError } from "./types.ts";

const O_RDONLY_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
/** Exit status when the thread is stranded in a foreign namespace (EX_SOFTWARE). */
export const EXIT_STRANDED = 70;

let homeFd: number | undefined;

/** The descriptor of this thread's own namespace, opened once (the thread always returns to it). */
function home(): number {
  if (homeFd === undefined) {
    const fd = libc().open(cstr("/proc/thread-self/ns/net"), O_RDONLY_CLOEXEC);
    if (fd < 0) throw new NetError("open /proc/thread-self/ns/net", errno());
    homeFd = fd;
  }
  return homeFd;
}

/** The descriptor of the process's own namespace (owned by this module; do not close). */
export function ownNetnsFd(): number {
  return home();
}

/** Opens a namespace file (e.g. /var/run/netns/x or /proc/PID/ns/net); throws NetError ENOENT when absent. */
export function openNetns(path: string): number {
  const fd = libc().open(cstr(path), O_RDONLY_CLOEXEC);
  if (fd < 0) throw new NetError(`open network namespace ${path}`, errno());
  return fd;
}

export function closeFd(fd: number): void {
  libc().close(fd);
}

/**
 * Runs `fn` with this thread inside the namespace `fd`, then returns to its own namespace. `fn` must be
 * synchronous; a returned promise is a programming error and ends the process like a failed return.
 */
export function inNetns<T>(fd: number, what: string, fn: () => T): T {
  const self = home();
  if (libc().setns(fd, CLONE_NEWNET) !== 0) {
    throw new NetError(`enter network namespace for ${what}`, errno());
  }
  let result: T;
  try {
    result = fn();
  } finally {
    if (libc().setns(self, CLONE_NEWNET) !== 0) stranded(what, errno());
  }
  if (result instanceof Promise) stranded(`${what} (an asynchronous function ran inside the namespace)`, 0);
  return result;
}

function stranded(what: string, err: number): never {
  const msg =
    `spiderpool: cannot return to the process's network namespace after ${what} (errno ${err}); exiting\n`;
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(msg));
  } finally {
    Deno.exit(EXIT_STRANDED);
  }
}
