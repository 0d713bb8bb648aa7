// `rdma -j` output of a node with one ConnectX PF (mlx5_0, RoCE on ens1f0np0) and two of its SR-IOV VFs
// (mlx5_2, mlx5_3), written from the JSON printers of iproute2's rdma tool: rdma/dev.c (ifindex, ifname,
// node_type, fw, node_guid, sys_image_guid as "xxxx:xxxx:xxxx:xxxx"), rdma/link.c (ifindex, ifname, port,
// state, physical_state, netdev, netdev_index; iproute2 before 5.x printed ifname as "dev/port"), rdma/sys.c
// (netns; newer versions add privileged-qkey) and rdma/stat.c (ifname, port, then one number per hardware
// counter, named by the driver; mlx5's names as in the spec's §10 list). The machines this project is tested on
// have no RDMA device; these are the shapes the parser must read.

export const DEV_SHOW = JSON.stringify([
  {
    ifindex: 0,
    ifname: "mlx5_0",
    node_type: "ca",
    fw: "22.39.2048",
    node_guid: "0c42:a103:00f5:6e7e",
    sys_image_guid: "0c42:a103:00f5:6e7e",
  },
  {
    ifindex: 2,
    ifname: "mlx5_2",
    node_type: "ca",
    fw: "22.39.2048",
    node_guid: "0000:0000:0000:0001",
    sys_image_guid: "0c42:a103:00f5:6e7e",
  },
  {
    ifindex: 3,
    ifname: "mlx5_3",
    node_type: "ca",
    fw: "22.39.2048",
    node_guid: "0000:0000:0000:0002",
    sys_image_guid: "0c42:a103:00f5:6e7e",
  },
]);

/** iproute2 6.x: ifname and port apart. */
export const LINK_SHOW_HOST = JSON.stringify([
  {
    ifindex: 0,
    ifname: "mlx5_0",
    port: 1,
    state: "ACTIVE",
    physical_state: "LINK_UP",
    netdev: "ens1f0np0",
    netdev_index: 4,
  },
]);

/** Older iproute2: "dev/port" in ifname. */
export const LINK_SHOW_OLD = JSON.stringify([
  {
    ifindex: 2,
    port: 1,
    ifname: "mlx5_2/1",
    state: "ACTIVE",
    physical_state: "LINK_UP",
    netdev: "eth0",
    netdev_index: 2,
  },
]);

export const SYSTEM_SHARED = JSON.stringify([{ netns: "shared" }]);
export const SYSTEM_EXCLUSIVE = JSON.stringify([{ netns: "exclusive", "privileged-qkey": "off" }]);

const MLX5_COUNTERS = {
  rx_write_requests: 2331678,
  rx_read_requests: 1161608,
  rx_atomic_requests: 0,
  rx_dct_connect: 0,
  out_of_buffer: 0,
  out_of_sequence: 0,
  duplicate_request: 0,
  rnr_nak_retry_err: 0,
  packet_seq_err: 0,
  implied_nak_seq_err: 0,
  local_ack_timeout_err: 0,
  resp_local_length_error: 0,
  resp_cqe_error: 0,
  req_cqe_error: 0,
  req_remote_invalid_request: 0,
  req_remote_access_errors: 0,
  resp_remote_access_errors: 0,
  resp_cqe_flush_error: 0,
  req_cqe_flush_error: 0,
  roce_adp_retrans: 0,
  roce_adp_retrans_to: 0,
  roce_slow_restart: 0,
  roce_slow_restart_cnps: 0,
  roce_slow_restart_trans: 0,
  rp_cnp_ignored: 0,
  rp_cnp_handled: 12,
  np_ecn_marked_roce_packets: 7,
  np_cnp_sent: 7,
  rx_icrc_encapsulated: 0,
};

export const STAT_SHOW_HOST = JSON.stringify([{ ifname: "mlx5_0", port: 1, ...MLX5_COUNTERS }]);
export const STAT_SHOW_VF = JSON.stringify([
  { ifname: "mlx5_2", port: 1, ...MLX5_COUNTERS, rx_write_requests: 42 },
]);

/** What `rdma` prints on stderr (exit 1) when the kernel has no RDMA subsystem, as on the test machines. */
export const NO_RDMA_STDERR = "Failed to open NETLINK_RDMA socket";
