// Sysctl keys as files under /proc/sys. The files are per network namespace for `net.*` keys: whoever opens
// them sees the namespace it is in, which is why the backends read and write them from inside the namespace.

const KEY = /^[a-z0-9_]+(\.[A-Za-z0-9_@:-]+)+$/;

/**
 * The /proc/sys path of a dotted key ("net.ipv4.conf.all.rp_filter"). An interface name with a dot is written
 * with "/" as sysctl(8) does ("net/ipv4/conf/eth0.100/rp_filter" is accepted as is).
 */
export function sysctlPath(key: string): string {
  if (key.includes("/")) {
    if (key.split("/").some((s) => s === "" || s === "." || s === "..")) throw badKey(key);
    return `/proc/sys/${key}`;
  }
  if (!KEY.test(key)) throw badKey(key);
  return `/proc/sys/${key.replaceAll(".", "/")}`;
}

function badKey(key: string): Error {
  return new Error(`invalid sysctl key ${JSON.stringify(key)}; expected e.g. net.ipv4.conf.all.rp_filter`);
}
