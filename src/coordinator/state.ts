// What a coordinator ADD leaves on the node besides the network changes: a record of how to take them back
// (read by DEL and CHECK), kept in /run so it goes away with the sandboxes at reboot; and the node-wide lock
// that keeps concurrent ADDs and DELs from racing on the shared host rule.

import type { Op } from "../net/ops.ts";

export const STATE_DIR = "/run/spidernet/coordinator";
export const LOCK_FILE = "/run/spidernet/coordinator.lock";
const LOCK_TIMEOUT_MS = 60_000;

/** The record of one ADD (one container, one NIC). */
export interface AddRecord {
  version: 1;
  containerId: string;
  ifName: string;
  netns: string;
  mode: "underlay" | "overlay";
  table: number;
  hostVeth: string;
  podIPs: string[];
  /** Operations that take the ADD back, in the order it applied them (take them back from the end). */
  undo: Op[];
}

export function recordPath(containerId: string, ifName: string, dir = STATE_DIR): string {
  return `${dir}/${containerId}-${ifName}.json`;
}

export async function readRecord(
  containerId: string,
  ifName: string,
  dir = STATE_DIR,
): Promise<AddRecord | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(recordPath(containerId, ifName, dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const rec = JSON.parse(text) as AddRecord;
  if (rec.version !== 1 || !Array.isArray(rec.undo)) {
    throw new Error(`${recordPath(containerId, ifName, dir)} is not a coordinator record of this version`);
  }
  return rec;
}

/** Writes the record atomically (a reader never sees half of it). */
export async function writeRecord(rec: AddRecord, dir = STATE_DIR): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const path = recordPath(rec.containerId, rec.ifName, dir);
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(rec), { mode: 0o600 });
  await Deno.rename(tmp, path);
}

export async function removeRecord(containerId: string, ifName: string, dir = STATE_DIR): Promise<void> {
  await Deno.remove(recordPath(containerId, ifName, dir)).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

/** Runs `fn` holding the node-wide coordinator lock (an exclusive flock, released if the process dies). */
export async function withHostLock<T>(fn: () => Promise<T>, path = LOCK_FILE): Promise<T> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const file = await Deno.open(path, { create: true, write: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      file.lock(true),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`another coordinator has held ${path} for ${LOCK_TIMEOUT_MS / 1000} s`)),
          LOCK_TIMEOUT_MS,
        );
      }),
    ]);
    clearTimeout(timer);
    return await fn();
  } finally {
    clearTimeout(timer);
    file.close(); // closing releases the lock
  }
}
