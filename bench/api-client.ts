// The cost of one API call in the functions' own process: the functions' transport (shared/kube/rest.ts) beside
// client-node's generated CoreV1Api (with a keep-alive agent, as the functions used it before), the same reads
// and writes against a real kube-apiserver, one after another. CPU from process.cpuUsage: this process only.
// `npm run bench:api-client`; BENCH_CALLS per call (500).
import * as https from "node:https";
import * as k8s from "@kubernetes/client-node";
import { startControlPlane } from "../dev/controlplane/control-plane.ts";
import { createKube, loadKubeConfig, type Kube } from "../shared/kube/client.ts";
import { readObject } from "../shared/kube/core.ts";
import { mergePatch } from "../shared/kube/objects.ts";
import { machine, median, printTable } from "./support.ts";

const CALLS = Number(process.env.BENCH_CALLS ?? 500);
const NS = "default";
const NAME = "api-client-bench";

const plane = await startControlPlane({ log: (l) => console.error(`[api-client] ${l}`) });
try {
  const config = loadKubeConfig(plane.kubeconfig);
  const kube = createKube(config);
  const keptAlive = keepAliveGenerated(config);
  await keptAlive.createNamespacedConfigMap({
    namespace: NS,
    body: { metadata: { name: NAME }, data: { "ca-bundle.crt": "x".repeat(2_000) } },
  });

  const cases: Array<[string, () => Promise<unknown>]> = [
    ["GET ConfigMap, functions' transport", () => readObject(kube, "ConfigMap", NS, NAME)],
    [
      "GET ConfigMap, client-node CoreV1Api",
      () => keptAlive.readNamespacedConfigMap({ namespace: NS, name: NAME }),
    ],
    ["PATCH ConfigMap (merge), functions' transport", () => patch(kube)],
    [
      "PATCH ConfigMap (merge), client-node CoreV1Api",
      () =>
        keptAlive.patchNamespacedConfigMap(
          { namespace: NS, name: NAME, body: { metadata: { labels: { bench: String(Math.random()) } } } },
          k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
        ),
    ],
  ];
  // Rounds of each case in turn, so a machine that drifts (the API server shares the cores) moves all alike.
  const ROUNDS = 10;
  const spent = cases.map(() => ({ cpu: 0, walls: [] as number[] }));
  for (const [, call] of cases) for (let i = 0; i < 50; i++) await call(); // warm-up: connections, JIT
  for (let round = 0; round < ROUNDS; round++) {
    for (const [c, [, call]] of cases.entries()) {
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < CALLS / ROUNDS; i++) {
        const t = performance.now();
        await call();
        spent[c]!.walls.push(performance.now() - t);
      }
      const cpu = process.cpuUsage(cpu0);
      spent[c]!.cpu += cpu.user + cpu.system;
    }
  }
  const rows = cases.map(([what], c) => {
    const { cpu, walls } = spent[c]!;
    walls.sort((x, y) => x - y);
    return [what, (cpu / 1000 / walls.length).toFixed(2), median(walls).toFixed(2)];
  });
  printTable(
    `API calls one after another, ${CALLS} each, in one process (${machine()})`,
    ["call", "CPU ms per call (this process)", "wall ms per call, median"],
    rows,
  );
} finally {
  await plane.stop();
}

function patch(kube: Kube) {
  return mergePatch(
    kube,
    { apiVersion: "v1", kind: "ConfigMap", namespace: NS, name: NAME },
    { metadata: { labels: { bench: String(Math.random()) } } },
  );
}

/** client-node's generated API as the functions used it before: one keep-alive agent instead of one per call. */
function keepAliveGenerated(config: k8s.KubeConfig): k8s.CoreV1Api {
  const agents = new Map<string, https.Agent>();
  const authenticate = config.applySecurityAuthentication.bind(config);
  const wrapped = Object.create(config) as k8s.KubeConfig;
  wrapped.applySecurityAuthentication = async (context) => {
    await authenticate(context);
    const made = context.getAgent() as https.Agent;
    let agent = agents.get("one");
    if (!agent)
      agents.set(
        "one",
        (agent = new https.Agent({ ...(made.options as https.AgentOptions), keepAlive: true })),
      );
    context.setAgent(agent);
  };
  return wrapped.makeApiClient(k8s.CoreV1Api);
}
