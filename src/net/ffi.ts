// The C libraries the network layer calls through Deno's FFI, opened on first use only: libc (namespaces,
// raw sockets) and libnl-3 / libnl-route-3 (netlink sockets, messages and route objects). A CNI plugin that
// never touches the network pays nothing; one that cannot load libnl falls back to iproute2 (see mod.ts).

const LIBC = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  // Raw packet sockets (packet.ts): bind to one link, look the link up, wait for and read frames.
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"], result: "isize" },
} as const;

const LIBNL = {
  nl_socket_alloc: { parameters: [], result: "pointer" },
  nl_socket_free: { parameters: ["pointer"], result: "void" },
  nl_connect: { parameters: ["pointer", "i32"], result: "i32" },
  nl_socket_get_fd: { parameters: ["pointer"], result: "i32" },
  nl_socket_set_msg_buf_size: { parameters: ["pointer", "usize"], result: "i32" },
  nl_socket_set_buffer_size: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  nl_send_auto: { parameters: ["pointer", "pointer"], result: "i32" },
  nl_recv: { parameters: ["pointer", "buffer", "buffer", "pointer"], result: "i32" },
  nlmsg_alloc_simple: { parameters: ["i32", "i32"], result: "pointer" },
  nlmsg_append: { parameters: ["pointer", "buffer", "usize", "i32"], result: "i32" },
  nlmsg_free: { parameters: ["pointer"], result: "void" },
  nlmsg_hdr: { parameters: ["pointer"], result: "pointer" },
  nl_addr_build: { parameters: ["i32", "buffer", "usize"], result: "pointer" },
  nl_addr_set_prefixlen: { parameters: ["pointer", "i32"], result: "void" },
  nl_addr_put: { parameters: ["pointer"], result: "void" },
  nl_geterror: { parameters: ["i32"], result: "pointer" },
} as const;

const LIBNL_ROUTE = {
  rtnl_link_alloc: { parameters: [], result: "pointer" },
  rtnl_link_put: { parameters: ["pointer"], result: "void" },
  rtnl_link_set_name: { parameters: ["pointer", "buffer"], result: "void" },
  rtnl_link_set_ifindex: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_link_set_flags: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_link_unset_flags: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_link_set_mtu: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_link_set_txqlen: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_link_set_addr: { parameters: ["pointer", "pointer"], result: "void" },
  rtnl_link_set_master: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_link_set_ns_fd: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_link_veth_alloc: { parameters: [], result: "pointer" },
  rtnl_link_veth_get_peer: { parameters: ["pointer"], result: "pointer" },
  rtnl_link_build_add_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  rtnl_link_build_change_request: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
  rtnl_link_build_delete_request: { parameters: ["pointer", "buffer"], result: "i32" },

  rtnl_addr_alloc: { parameters: [], result: "pointer" },
  rtnl_addr_put: { parameters: ["pointer"], result: "void" },
  rtnl_addr_set_ifindex: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_addr_set_family: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_addr_set_local: { parameters: ["pointer", "pointer"], result: "i32" },
  rtnl_addr_set_prefixlen: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_addr_set_scope: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_addr_build_add_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  rtnl_addr_build_delete_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },

  rtnl_route_alloc: { parameters: [], result: "pointer" },
  rtnl_route_put: { parameters: ["pointer"], result: "void" },
  rtnl_route_set_family: { parameters: ["pointer", "u8"], result: "i32" },
  rtnl_route_set_dst: { parameters: ["pointer", "pointer"], result: "i32" },
  rtnl_route_set_table: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_route_set_scope: { parameters: ["pointer", "u8"], result: "void" },
  rtnl_route_set_protocol: { parameters: ["pointer", "u8"], result: "void" },
  rtnl_route_set_priority: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_route_set_pref_src: { parameters: ["pointer", "pointer"], result: "i32" },
  rtnl_route_add_nexthop: { parameters: ["pointer", "pointer"], result: "void" },
  rtnl_route_nh_alloc: { parameters: [], result: "pointer" },
  rtnl_route_nh_set_ifindex: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_route_nh_set_gateway: { parameters: ["pointer", "pointer"], result: "void" },
  rtnl_route_build_add_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  rtnl_route_build_del_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },

  rtnl_rule_alloc: { parameters: [], result: "pointer" },
  rtnl_rule_put: { parameters: ["pointer"], result: "void" },
  rtnl_rule_set_family: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_rule_set_prio: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_rule_set_table: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_rule_set_action: { parameters: ["pointer", "u8"], result: "void" },
  rtnl_rule_set_src: { parameters: ["pointer", "pointer"], result: "i32" },
  rtnl_rule_set_dst: { parameters: ["pointer", "pointer"], result: "i32" },
  rtnl_rule_set_mark: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_rule_set_mask: { parameters: ["pointer", "u32"], result: "void" },
  rtnl_rule_build_add_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  rtnl_rule_build_delete_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },

  rtnl_neigh_alloc: { parameters: [], result: "pointer" },
  rtnl_neigh_put: { parameters: ["pointer"], result: "void" },
  rtnl_neigh_set_ifindex: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_neigh_set_family: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_neigh_set_dst: { parameters: ["pointer", "pointer"], result: "i32" },
  rtnl_neigh_set_lladdr: { parameters: ["pointer", "pointer"], result: "void" },
  rtnl_neigh_set_state: { parameters: ["pointer", "i32"], result: "void" },
  rtnl_neigh_build_add_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  rtnl_neigh_build_delete_request: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
} as const;

export type Libc = Deno.DynamicLibrary<typeof LIBC>["symbols"];
export type Libnl = Deno.DynamicLibrary<typeof LIBNL>["symbols"];
export type LibnlRoute = Deno.DynamicLibrary<typeof LIBNL_ROUTE>["symbols"];

/** The file names tried, in order (Debian's libnl-3-200 / libnl-route-3-200). */
export const LIBNL_FILES = ["libnl-3.so.200", "libnl-3.so"];
export const LIBNL_ROUTE_FILES = ["libnl-route-3.so.200", "libnl-route-3.so"];

let libcCache: Libc | undefined;
let libnlCache: { nl: Libnl; rt: LibnlRoute } | undefined;

function openFirst<S extends Deno.ForeignLibraryInterface>(
  files: string[],
  symbols: S,
): Deno.DynamicLibrary<S> {
  const errors: string[] = [];
  for (const f of files) {
    try {
      return Deno.dlopen(f, symbols);
    } catch (e) {
      errors.push(`${f}: ${(e as Error).message}`);
    }
  }
  throw new Error(errors.join("; "));
}

/** The C library (always present on a glibc system). */
export function libc(): Libc {
  return libcCache ??= openFirst(["libc.so.6"], LIBC).symbols;
}

/** libnl-3 and libnl-route-3; throws when either cannot be loaded (see LibnlUnavailable in mod.ts). */
export function libnl(): { nl: Libnl; rt: LibnlRoute } {
  if (!libnlCache) {
    const nl = openFirst(LIBNL_FILES, LIBNL).symbols;
    const rt = openFirst(LIBNL_ROUTE_FILES, LIBNL_ROUTE).symbols;
    libnlCache = { nl, rt };
  }
  return libnlCache;
}

/** A NUL-terminated C string. */
export function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/** The calling thread's errno (read right after the failing call). */
export function errno(): number {
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

/** Text of a libnl error code (libnl's own numbering, not errno). */
export function nlErrorText(code: number): string {
  const p = libnl().nl.nl_geterror(code);
  return p ? Deno.UnsafePointerView.getCString(p) : `libnl error ${code}`;
}
