// `npm start`: the whole system locally — control plane, Knative CRDs, infra/, every function under its own
// ServiceAccount, Knative's event source adapters — until Ctrl-C.
// `npm start -- --cluster`: the system as deployed — a one-node cluster (kubelet, containerd, kube-proxy,
// CoreDNS), Knative Eventing's controller and webhook as pods, and infra/overlays/eventing-only/ applied with
// the project's image (needs root: it creates network links, mounts and iptables rules, all removed at stop).
import { startLocalSystem } from "../dev/local-system/local-system.ts";
import { startDeployedSystem } from "../dev/cluster/deployed-system.ts";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log(`usage: npm start [-- --cluster]

  (default)   the local mode: functions as host processes, Knative's adapters configured from infra/ (~20 s)
  --cluster   the deployed mode: a one-node cluster running the image, installed from infra/overlays/eventing-only/

Prints "function <name>: <url>" for each function and "ready: KUBECONFIG=<path> KUBECTL=<path>"; Ctrl-C stops
everything it started.`);
  process.exit(0);
}
const unknown = args.filter((a) => a !== "--cluster");
if (unknown.length > 0) {
  console.error(`unknown argument ${JSON.stringify(unknown[0])}; see npm start -- --help`);
  process.exit(2);
}

let stopSystem: (() => Promise<void>) | undefined;
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  console.log("stopping...");
  await stopSystem?.();
  console.log("stopped; nothing left running");
  process.exit(code);
};
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

const log = (l: string) => console.log(`[start] ${l}`);
try {
  if (args.includes("--cluster")) {
    const system = await startDeployedSystem({ log });
    stopSystem = system.stop;
    for (const [name, url] of [...system.functions].sort(([a], [b]) => a.localeCompare(b)))
      console.log(`function ${name}: ${url}`);
    console.log(`logs: ${system.cluster.dir}/logs`);
    console.log(`ready: KUBECONFIG=${system.cluster.kubeconfig} KUBECTL=${system.cluster.kubectl}`);
  } else {
    const system = await startLocalSystem({ log });
    stopSystem = system.stop;
    for (const [name, fn] of [...system.functions].sort(([a], [b]) => a.localeCompare(b)))
      console.log(`function ${name}: ${fn.url}`);
    console.log(`logs: ${system.plane.dir}/logs`);
    console.log(`ready: KUBECONFIG=${system.plane.kubeconfig} KUBECTL=${system.plane.kubectl}`);
  }
} catch (err) {
  console.error(`start failed: ${err instanceof Error ? err.message : String(err)}`);
  await stop(1);
}
