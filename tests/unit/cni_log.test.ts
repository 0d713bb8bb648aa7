// File logging of CNI plugins: append with directories created, level filtering, size rotation with
// bounded backups, and a failing log that never throws.
import assert from "node:assert/strict";
import { backupName, FileLogger, type FileLogOptions } from "../../src/cni/log.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sp-log-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function opts(path: string, extra: Partial<FileLogOptions> = {}): FileLogOptions {
  return { path, level: "info", maxSizeMB: 100, maxAgeDays: 30, maxCount: 10, ...extra };
}

Deno.test("lines at or above the level are appended to the file, creating its directory", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/a/b/spiderpool.log`;
    for (const word of ["first", "second"]) {
      const log = new FileLogger(opts(path), "ADD c1 eth0");
      log.debug(`${word} debug`);
      log.info(`${word} info`);
      log.error(`${word} error`);
      log.flush();
    }
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
    assert.equal(lines.length, 4);
    assert.match(lines[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}ADD c1 eth0 first info$/);
    assert.match(lines[3], /ERROR ADD c1 eth0 second error$/);
  });
});

Deno.test("a file that would grow past the size limit is rotated, keeping at most max_count backups", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/spiderpool.log`;
    const big = "x".repeat(700 * 1024);
    for (let i = 0; i < 4; i++) {
      await Deno.writeTextFile(path, big, { append: true });
      const log = new FileLogger(opts(path, { maxSizeMB: 1, maxCount: 2 }), "DEL");
      log.info(`round ${i}`);
      log.flush();
      await new Promise((r) => setTimeout(r, 5)); // distinct backup timestamps
    }
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    const backups = names.filter((n) => n !== "spiderpool.log");
    assert.equal(backups.length, 2, names.join(" "));
    for (const b of backups) assert.match(b, /^spiderpool-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log$/);
  });
});

Deno.test("backup names follow the log file's name and the UTC time", () => {
  assert.equal(
    backupName("/var/log/spidernet/spiderpool.log", new Date("2026-01-02T03:04:05.678Z")),
    "/var/log/spidernet/spiderpool-2026-01-02T03-04-05.678.log",
  );
});

Deno.test("a log path that cannot be written does not throw", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    const log = new FileLogger(opts(`${dir}/file/below/spiderpool.log`), "ADD");
    log.error("goes to stderr instead");
    log.flush();
  });
});
