// File logging for CNI plugins: stdout carries the result, so logs go to a file (appended, directories
// created, rotated by size with bounded backups). Lines are buffered and written once when the command
// ends; a logging failure is reported on stderr and never changes the command's outcome.

export type LogLevel = "debug" | "info" | "warn" | "error";

/** Accepted `log_level` values (upstream's names); fatal and panic log like error. */
export const LOG_LEVELS: Record<string, LogLevel> = {
  debug: "debug",
  info: "info",
  warn: "warn",
  warning: "warn",
  error: "error",
  fatal: "error",
  panic: "error",
};

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface FileLogOptions {
  path: string;
  level: LogLevel;
  /** Rotate when the file would exceed this many MiB; 0 = never. */
  maxSizeMB: number;
  /** Remove rotated files older than this many days; 0 = keep. */
  maxAgeDays: number;
  /** Keep at most this many rotated files; 0 = keep all. */
  maxCount: number;
}

/** A buffered logger; `context` (e.g. command and container) prefixes every line. */
export class FileLogger {
  readonly opts: FileLogOptions;
  readonly #context: string;
  #lines: string[] = [];

  constructor(opts: FileLogOptions, context: string) {
    this.opts = opts;
    this.#context = context;
  }

  log(level: LogLevel, msg: string): void {
    if (RANK[level] < RANK[this.opts.level]) return;
    this.#lines.push(
      `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${this.#context} ${msg}\n`,
    );
  }
  debug(msg: string): void {
    this.log("debug", msg);
  }
  info(msg: string): void {
    this.log("info", msg);
  }
  warn(msg: string): void {
    this.log("warn", msg);
  }
  error(msg: string): void {
    this.log("error", msg);
  }

  /** Appends the buffered lines to the file; never throws. */
  flush(): void {
    if (this.#lines.length === 0) return;
    const text = this.#lines.join("");
    this.#lines = [];
    try {
      appendRotating(this.opts, text);
    } catch (e) {
      try {
        Deno.stderr.writeSync(
          new TextEncoder().encode(
            `cannot write the log file ${this.opts.path}: ${(e as Error).message}\n${text}`,
          ),
        );
      } catch { /* nowhere left to report */ }
    }
  }
}

function splitName(path: string): { dir: string; stem: string; ext: string } {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const base = path.slice(slash + 1);
  const dot = base.lastIndexOf(".");
  return dot > 0 ? { dir, stem: base.slice(0, dot), ext: base.slice(dot) } : { dir, stem: base, ext: "" };
}

/** Name of a rotated file, as lumberjack writes it: `<stem>-<UTC time with dashes><ext>`. */
export function backupName(path: string, now: Date): string {
  const { dir, stem, ext } = splitName(path);
  const stamp = now.toISOString().replace(/:/g, "-").replace("Z", "");
  return `${dir}/${stem}-${stamp}${ext}`;
}

// Synchronous file calls on purpose: the async ones load the web streams module into a plugin process that
// otherwise never needs it (≈ 3 ms of CPU per call), and a plugin writes its log once, at exit.
// The usual call is one stat and one append: the directory is made and the mode set only for a new file.
function appendRotating(opts: FileLogOptions, text: string): void {
  const { dir, stem, ext } = splitName(opts.path);
  let size: number | undefined;
  try {
    size = Deno.statSync(opts.path).size;
  } catch { /* no file yet, maybe no directory either */ }
  const create = () => {
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(opts.path, text, { append: true, create: true, mode: 0o640 });
  };
  if (size === undefined) return create();
  const limit = opts.maxSizeMB * 1024 * 1024;
  if (limit > 0 && size > 0 && size + text.length > limit) {
    // Another plugin process may rotate at the same moment; losing that race is harmless.
    try {
      Deno.renameSync(opts.path, backupName(opts.path, new Date()));
      pruneBackups(dir, stem, ext, opts);
    } catch { /* another process rotated first */ }
    return create();
  }
  Deno.writeTextFileSync(opts.path, text, { append: true, create: true });
}

function pruneBackups(dir: string, stem: string, ext: string, opts: FileLogOptions): void {
  const pattern = new RegExp(
    `^${escape(stem)}-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}\\.\\d{3}${escape(ext)}$`,
  );
  const backups: string[] = [];
  for (const e of Deno.readDirSync(dir)) if (e.isFile && pattern.test(e.name)) backups.push(e.name);
  backups.sort().reverse(); // newest first: the timestamp sorts lexically
  const cutoff = Date.now() - opts.maxAgeDays * 86_400_000;
  for (const [i, name] of backups.entries()) {
    const tooMany = opts.maxCount > 0 && i >= opts.maxCount;
    const stamp = name.slice(stem.length + 1, name.length - ext.length);
    const [day, time] = stamp.split("T");
    const when = Date.parse(`${day}T${time.replace(/-/g, ":")}Z`);
    const tooOld = opts.maxAgeDays > 0 && when < cutoff;
    if (tooMany || tooOld) {
      try {
        Deno.removeSync(`${dir}/${name}`);
      } catch { /* removed by another process */ }
    }
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
