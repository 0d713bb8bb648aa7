// The values of charts/spiderpool as a table: one row per leaf key with its default and the `# --` comment
// above it in values.yaml. The chart's README carries this table; tests/node/chart.test.ts checks that the two
// agree, and `deno run -A tests/node/chart_values.ts --write` rewrites the README's table from values.yaml.

import { load } from "js-yaml";

export const CHART_DIR = new URL("../../charts/spiderpool/", import.meta.url).pathname;
const BEGIN = "<!-- values:begin -->";
const END = "<!-- values:end -->";

export interface ValueRow {
  key: string;
  /** The default as JSON (strings quoted, lists and maps inline). */
  default: string;
  description: string;
}

/** Leaf keys of a values tree: scalars, lists and empty maps are leaves; non-empty maps are descended. */
export function flatten(values: Record<string, unknown>, prefix = ""): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(values)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > 0) {
      for (const [kk, vv] of flatten(v as Record<string, unknown>, key)) out.set(kk, vv);
    } else {
      out.set(key, v);
    }
  }
  return out;
}

/** The `# --` comments of values.yaml by the dotted key of the line they stand above. */
export function descriptions(yaml: string): Map<string, string> {
  const out = new Map<string, string>();
  const path: { indent: number; key: string }[] = [];
  let pending: string[] = [];
  for (const line of yaml.split("\n")) {
    const comment = line.match(/^\s*# -- ?(.*)$/);
    if (comment) {
      pending.push(comment[1]);
      continue;
    }
    const m = line.match(/^(\s*)([A-Za-z0-9_./-]+):/);
    if (!m) {
      if (!/^\s*(#.*)?$/.test(line)) pending = [];
      continue;
    }
    const indent = m[1].length;
    while (path.length > 0 && path.at(-1)!.indent >= indent) path.pop();
    path.push({ indent, key: m[2] });
    if (pending.length > 0) out.set(path.map((p) => p.key).join("."), pending.join(" "));
    pending = [];
  }
  return out;
}

export async function valueRows(): Promise<ValueRow[]> {
  const yaml = await Deno.readTextFile(`${CHART_DIR}values.yaml`);
  const docs = descriptions(yaml);
  const rows: ValueRow[] = [];
  for (const [key, v] of flatten(load(yaml) as Record<string, unknown>)) {
    // A map's comment describes its keys when they have none of their own.
    let description = docs.get(key) ?? "";
    for (let p = key; !description && p.includes(".");) {
      p = p.slice(0, p.lastIndexOf("."));
      description = docs.get(p) ?? "";
    }
    rows.push({ key, default: JSON.stringify(v), description });
  }
  return rows;
}

export function renderTable(rows: ValueRow[]): string {
  const esc = (s: string) => s.replaceAll("|", "\\|");
  return [
    "| Key | Default | Description |",
    "| --- | --- | --- |",
    ...rows.map((r) => `| \`${r.key}\` | \`${esc(r.default)}\` | ${esc(r.description)} |`),
  ].join("\n");
}

/** The rows of the README's table: key and default, as written there. */
export function parseReadmeTable(readme: string): Map<string, string> {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < 0) throw new Error(`the chart README has no ${BEGIN} … ${END} table`);
  const out = new Map<string, string>();
  for (const line of readme.slice(start, end).split("\n")) {
    const m = line.match(/^\| `([^`]+)` \| `(.*)` \| .* \|$/);
    if (m) out.set(m[1], m[2].replaceAll("\\|", "|"));
  }
  return out;
}

if (import.meta.main) {
  const table = renderTable(await valueRows());
  if (Deno.args[0] === "--write") {
    const path = `${CHART_DIR}README.md`;
    const readme = await Deno.readTextFile(path);
    const start = readme.indexOf(BEGIN);
    const end = readme.indexOf(END);
    if (start < 0 || end < 0) throw new Error(`${path} has no ${BEGIN} … ${END} markers`);
    await Deno.writeTextFile(
      path,
      `${readme.slice(0, start + BEGIN.length)}\n${table}\n${readme.slice(end)}`,
    );
  } else {
    console.log(table);
  }
}
