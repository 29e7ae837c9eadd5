// Throughput: N Services annotated at once through the real event path; certificates per second beside the raw
// RSA-2048 key-generation rate of the same cores, measured in the same run while the system is idle.
import { availableParallelism } from "node:os";
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem } from "../dev/local-system/local-system.ts";
import { annotations } from "../shared/names.ts";
import { generateKeyPair } from "../shared/pki/keys.ts";
import { mapLimit } from "../shared/runtime/concurrency.ts";
import { Arrivals, cpuSeconds, machine, printTable } from "./support.ts";
import { scrape } from "../dev/metrics.ts";

const COUNT = Number(process.env.BENCH_COUNT ?? 200);
const KEYS = Number(process.env.BENCH_KEYS ?? 60);
const NS = "bench-throughput";
const POOL = 8; // issue-serving-cert's KEY_POOL_SIZE default: keys generated before the burst began

/** Keys per second with every core generating (WebCrypto runs on libuv's pool of 4 threads). */
async function rawKeyRate(n: number): Promise<number> {
  const t0 = performance.now();
  await mapLimit(
    Array.from({ length: n }, (_, i) => i),
    Math.max(2, availableParallelism()),
    () => generateKeyPair("rsa-2048"),
  );
  return n / ((performance.now() - t0) / 1000);
}

// BENCH_FUNCTION_ENV='{"KEY_POOL_WORKERS":"4"}' measures a setting other than the defaults.
const system = await startLocalSystem({
  log: (l) => console.error(`[system] ${l}`),
  functionEnv: JSON.parse(process.env.BENCH_FUNCTION_ENV ?? "{}") as Record<string, string>,
});
try {
  const core = system.kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  const secrets = new Arrivals<k8s.V1Secret>(system.kc, `/api/v1/namespaces/${NS}/secrets`, (s) =>
    Boolean(s.data?.["tls.crt"]),
  );
  await secrets.start();
  const create = (name: string) =>
    core.createNamespacedService({
      namespace: NS,
      body: {
        metadata: { name, annotations: { [annotations.secretName]: `${name}-tls` } },
        spec: { ports: [{ port: 443 }] },
      },
    });
  await create("warmup"); // creates the CA
  await secrets.when("warmup-tls");
  await new Promise((r) => setTimeout(r, 3000));

  const before = await rawKeyRate(KEYS);
  const names = Array.from({ length: COUNT }, (_, i) => `svc-${i}`);
  // Where the 2 cores went during the burst, by process group.
  const groups: Array<[string, number[]]> = [
    [
      "issue-serving-cert (key generation included)",
      [system.functions.get("issue-serving-cert")!.process.pid],
    ],
    [
      "other functions",
      [...system.functions.values()].filter((f) => f.name !== "issue-serving-cert").map((f) => f.process.pid),
    ],
    ["kube-apiserver, etcd, controller-manager", system.plane.processes().map((p) => p.pid)],
    ["Knative adapters", system.sources.map((s) => s.pid)],
  ];
  const cpu = () => groups.map(([, pids]) => pids.reduce((n, pid) => n + cpuSeconds(pid), 0));
  const cpu0 = cpu();
  const bench0 = process.cpuUsage();
  const t0 = performance.now();
  await mapLimit(names, 32, create);
  const arrived = await Promise.all(names.map((n) => secrets.when(`${n}-tls`, 600_000)));
  const wall = (Math.max(...arrived) - t0) / 1000;
  const cpuUsed = cpu().map((c, i) => c - cpu0[i]!);
  const benchCpu = process.cpuUsage(bench0);
  secrets.stop();
  await new Promise((r) => setTimeout(r, 2000));
  const after = await rawKeyRate(KEYS);
  const raw = (before + after) / 2;
  const rate = COUNT / wall;
  const m = await scrape(system.functions.get("issue-serving-cert")!.url);
  const sum = (prefix: string) => [...m].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);
  const events = sum("service_ca_request_duration_seconds_count");
  const issued = sum("service_ca_issuance_duration_seconds_count");
  printTable(
    `Throughput: ${COUNT} Services annotated at once (${machine()})`,
    ["figure", "value"],
    [
      ["Secrets issued", COUNT],
      ["wall time (first create → last Secret readable), s", wall],
      ["certificates per second", rate],
      [`raw RSA-2048 key generation, keys/s (${KEYS} keys before and after, mean)`, raw],
      ["ratio (target ≥ 0.9)", rate / raw],
      [`the same without the ${POOL} keys the pool held before the burst`, (COUNT - POOL) / wall / raw],
      ...groups.map(([label], i): [string, number] => [`CPU s during the burst: ${label}`, cpuUsed[i]!]),
      ["CPU s during the burst: this benchmark (creates, watch)", (benchCpu.user + benchCpu.system) / 1e6],
      [
        `CPU s available in the burst (${availableParallelism()} cores × wall)`,
        availableParallelism() * wall,
      ],
      ["events handled by issue-serving-cert (whole run)", events],
      [
        "mean time per event in the handler, ms",
        (sum("service_ca_request_duration_seconds_sum") / events) * 1000,
      ],
      [
        "mean issuance (key, signature, Secret write), ms",
        (sum("service_ca_issuance_duration_seconds_sum") / issued) * 1000,
      ],
    ],
  );
} finally {
  await system.stop();
}
