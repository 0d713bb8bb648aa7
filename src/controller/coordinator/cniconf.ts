// Which CNI is the cluster's default, from the node's CNI configuration directory (SPIDERPOOL_CNI_CONFIG_DIR,
// mounted from the host): the first `.conf` or `.conflist` file in lexical order, Multus' own `00-multus`
// file skipped, as a container runtime picks it and as upstream's podCIDRType auto reads it.

/** The default CNI's network name and file, or why it could not be read. A missing directory has none. */
export interface DefaultCNI {
  dir: string;
  name?: string;
  file?: string;
  error?: string;
}

export async function readDefaultCNI(dir: string): Promise<DefaultCNI> {
  const files: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile && !e.isSymlink) continue;
      if (!/\.(conf|conflist)$/.test(e.name) || e.name.includes("00-multus")) continue;
      files.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { dir };
    return { dir, error: (err as Error).message };
  }
  if (files.length === 0) return { dir };
  files.sort();
  const file = `${dir.replace(/\/+$/, "")}/${files[0]}`;
  let conf: { name?: unknown; type?: unknown; plugins?: unknown };
  try {
    conf = JSON.parse(await Deno.readTextFile(file));
  } catch (err) {
    return { dir, file, error: `${file}: ${(err as Error).message}` };
  }
  if (conf === null || typeof conf !== "object") return { dir, file, error: `${file} is not a JSON object` };
  if (typeof conf.name !== "string" || conf.name === "") {
    // libcni refuses a conflist without a name; a single conf without one names no network either.
    return { dir, file, error: `${file} has no "name"` };
  }
  return { dir, file, name: conf.name };
}
