// Benchmark on the real node: time from `kubectl apply` of a 20-pod Deployment until all 20 pods run with an
// address, through Spiderpool (the chart's conflist: the node's main plugin, macvlan or bridge, with spiderpool
// IPAM and coordinator) and through Debian's host-local (the same main plugin with host-local and nothing after
// it, a conflist that sorts first) in the same run, alternating, and the set-up times.
// `scripts/bench.sh node` or `deno run -A tests/node/bench.ts [--rounds N] [--pods N]`.

import { parseArgs } from "node:util";
import { poll } from "../kube/poll.ts";
import { buildImages, chartValues, lastLine, type LocalNode, REPO_ROOT, run, startNode } from "./node.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "2" }, pods: { type: "string", default: "20" } },
});
const ROUNDS = Number(values.rounds);
const PODS = Number(values.pods);
const HOST_LOCAL_CONF = "05-host-local.conflist";

async function apply(node: LocalNode, obj: Obj): Promise<void> {
  await run(
    `${node.binDir}/kubectl`,
    ["--kubeconfig", node.kubeconfigPath, "apply", "-f", "-"],
    undefined,
    JSON.stringify(obj),
  );
}

function deployment(name: string, annotations: Record<string, string>): Obj {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: "default" },
    spec: {
      replicas: PODS,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: "main",
            image: "localhost/spiderpool-ts/busybox:1.35.0",
            command: ["sleep", "86400"],
          }],
        },
      },
    },
  };
}

/** Seconds from apply until PODS pods run with an address (polled every 200 ms). */
async function timeDeployment(
  node: LocalNode,
  name: string,
  annotations: Record<string, string>,
): Promise<number> {
  const started = performance.now();
  await apply(node, deployment(name, annotations));
  await poll(`${PODS} pods of ${name} running with addresses`, 600_000, async () => {
    const pods = JSON.parse(await node.kubectl("get", "pods", "-l", `app=${name}`, "-o", "json"))
      .items as Obj[];
    const up = pods.filter((p) => p.status.phase === "Running" && p.status.podIP);
    return up.length === PODS || undefined;
  });
  const secs = (performance.now() - started) / 1000;
  await node.kubectl("delete", "deployment", name, "--wait=true");
  await poll(`pods of ${name} gone`, 300_000, async () => {
    const pods = JSON.parse(await node.kubectl("get", "pods", "-l", `app=${name}`, "-o", "json"))
      .items as Obj[];
    return pods.length === 0 || undefined;
  });
  return secs;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const t0 = performance.now();
const binDir = Deno.env.get("SPIDERPOOL_NODE_BIN") ?? await lastLine("scripts/node-build.sh");
const images = await buildImages(binDir);
const node = await startNode({ binDir, images: Object.values(images) });
const nodeSecs = (performance.now() - t0) / 1000;
try {
  const valuesFile = `${node.dir}/values.json`;
  await Deno.writeTextFile(valuesFile, JSON.stringify(chartValues(node)));
  const t1 = performance.now();
  await node.helm(
    "install",
    "spiderpool",
    `${REPO_ROOT}charts/spiderpool`,
    "-n",
    "kube-system",
    "-f",
    valuesFile,
  );
  for (const workload of ["daemonset/spiderpool-agent", "deployment/spiderpool-controller"]) {
    await node.kubectl("-n", "kube-system", "rollout", "status", workload, "--timeout=300s");
  }
  const installSecs = (performance.now() - t1) / 1000;
  await apply(node, {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderIPPool",
    metadata: { name: "bench" },
    spec: { ipVersion: 4, subnet: "203.0.113.0/24", ips: ["203.0.113.100-203.0.113.199"] },
  });
  const hostLocal = JSON.stringify({
    cniVersion: "1.0.0",
    name: "host-local-bench",
    plugins: [{
      ...(node.mainPlugin === "macvlan"
        ? { type: "macvlan", master: node.bridgeName, mode: "bridge" }
        : { type: "bridge", bridge: node.bridgeName, isGateway: false, ipMasq: false }),
      ipam: {
        type: "host-local",
        dataDir: `${node.dir}/host-local`,
        ranges: [[{ subnet: "198.51.100.0/24", rangeStart: "198.51.100.10", rangeEnd: "198.51.100.200" }]],
      },
    }],
  });
  const spider: number[] = [];
  const local: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    spider.push(
      await timeDeployment(node, `spider-${round}`, { "ipam.spidernet.io/ippool": '{"ipv4":["bench"]}' }),
    );
    // containerd reloads its CNI configuration when the directory changes; the first file by name wins.
    await Deno.writeTextFile(`${node.cniConfDir}/${HOST_LOCAL_CONF}`, hostLocal);
    await new Promise((r) => setTimeout(r, 3_000));
    local.push(await timeDeployment(node, `local-${round}`, {}));
    await Deno.remove(`${node.cniConfDir}/${HOST_LOCAL_CONF}`);
    await new Promise((r) => setTimeout(r, 3_000));
    console.log(
      `round ${round}: spiderpool ${spider.at(-1)!.toFixed(1)} s, host-local ${local.at(-1)!.toFixed(1)} s`,
    );
  }
  console.log(
    `node start (control plane, containerd, kubelet, kube-proxy, image import): ${nodeSecs.toFixed(1)} s`,
  );
  console.log(`helm install until agent and controller are Ready: ${installSecs.toFixed(1)} s`);
  console.log(
    `${PODS}-pod Deployment (main plugin ${node.mainPlugin}), apply -> all Running with addresses ` +
      `(median of ${ROUNDS}): spiderpool + coordinator ${median(spider).toFixed(1)} s ` +
      `(${(PODS / median(spider)).toFixed(2)} pods/s), host-local ${median(local).toFixed(1)} s ` +
      `(${(PODS / median(local)).toFixed(2)} pods/s), ratio ${(median(spider) / median(local)).toFixed(2)}`,
  );
} finally {
  await node.stop();
}
