// Throughput: N Services annotated at once through the real event path; certificates per second beside the raw
// RSA-2048 key-generation rate of the same cores, measured in the same run while the system is idle.
import { availableParallelism } from "node:os";
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem } from "../dev/local-system/local-system.ts";
import { annotations } from "../shared/names.ts";
import { generateKeyPair } from "../shared/pki/keys.ts";
import { mapLimit } from "../shared/runtime/concurrency.ts";
import {
  apiServerRequests,
  Arrivals,
  countsSince,
  cpuSeconds,
  machine,
  peakRssMb,
  printTable,
  rssMb,
  RssSplit,
} from "./support.ts";
import { scrape } from "../dev/metrics.ts";

const COUNT = Number(process.env.BENCH_COUNT ?? 200);
const KEYS = Number(process.env.BENCH_KEYS ?? 60);
const NS = "bench-throughput";
const POOL = 8; // issue-serving-cert's KEY_POOL_SIZE default: keys generated before the burst began

/** CPU ms one RSA-2048 key took in the last rawKeyRate run (this process, every thread). */
let cpuMsPerKey = NaN;

/** Keys per second with every core generating (WebCrypto runs on libuv's pool of 4 threads). */
async function rawKeyRate(n: number): Promise<number> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await mapLimit(
    Array.from({ length: n }, (_, i) => i),
    Math.max(2, availableParallelism()),
    () => generateKeyPair("rsa-2048"),
  );
  const cpu = process.cpuUsage(cpu0);
  cpuMsPerKey = (cpu.user + cpu.system) / 1000 / n;
  return n / ((performance.now() - t0) / 1000);
}

// The operator (service-ca-operator, client-side limit off) on this machine, as issue 15 measured it.
const OPERATOR = { cpuMs: 78, requests: 2.02, rssMb: 89 };

// BENCH_FUNCTION_ENV='{"KEY_POOL_WORKERS":"4"}' measures a setting other than the defaults.
const system = await startLocalSystem({
  log: (l) => console.error(`[system] ${l}`),
  functionEnv: JSON.parse(process.env.BENCH_FUNCTION_ENV ?? "{}") as Record<string, string>,
});
const issuerRss = new RssSplit(system.functions.get("issue-serving-cert")!.process.pid);
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

  // Every function after its first work, before the burst: what each holds when idle.
  const idleRss = new Map([...system.functions].map(([name, f]) => [name, rssMb(f.process.pid)]));
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
  const requests0 = await apiServerRequests(system.kc);
  const cpu0 = cpu();
  const bench0 = process.cpuUsage();
  const t0 = performance.now();
  await mapLimit(names, 32, create);
  const arrived = await Promise.all(names.map((n) => secrets.when(`${n}-tls`, 600_000)));
  const wall = (Math.max(...arrived) - t0) / 1000;
  const cpuUsed = cpu().map((c, i) => c - cpu0[i]!);
  const benchCpu = process.cpuUsage(bench0);
  secrets.stop();
  await new Promise((r) => setTimeout(r, 2000)); // the events echoing the last writes are answered too
  const requests = countsSince(requests0, await apiServerRequests(system.kc));
  const issuerCpuMs = (cpu()[0]! - cpu0[0]!) * 1000;
  const keyCpuMs = cpuMsPerKey;
  const after = await rawKeyRate(KEYS);
  const raw = (before + after) / 2;
  const rate = COUNT / wall;
  const busy = cpuUsed.reduce((a, b) => a + b, 0) + (benchCpu.user + benchCpu.system) / 1e6;
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
      [
        "the cores busy during the burst, % of CPU s available",
        (busy / (availableParallelism() * wall)) * 100,
      ],
      [
        "ratio at most, had the issuer spent nothing but its keys and the rest what it spent (the 0.9 target's bound)",
        COUNT / ((busy - cpuUsed[0]! + COUNT * (keyCpuMs / 1000)) / availableParallelism()) / raw,
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

  // What the system asked the API server for: everything the API server counted, less the benchmark's own creates
  // and what the control plane does for itself (a ClusterIP's IPAddress for each Service created, leader-election
  // and node leases), and Knative's adapters looking up their own source objects and the API's discovery (on a
  // timer, however many certificates). Watches, the benchmark's and every adapter's, are long-running and not
  // counted here.
  const own = `POST services`;
  requests.set(own, (requests.get(own) ?? 0) - COUNT);
  const controlPlane = /^\S+ (ipaddresses|leases|apiserversources|pingsources|\/api|\/apis)$/;
  const byVerb = [...requests].filter(
    ([k, v]) => v > 0 && !k.startsWith("WATCH") && !k.endsWith(" ") && !controlPlane.test(k),
  );
  const total = byVerb.reduce((n, [, v]) => n + v, 0);
  const writes = byVerb
    .filter(([k]) => /^(POST|PUT|PATCH|DELETE|APPLY)/.test(k) && !/reviews/.test(k))
    .reduce((n, [, v]) => n + v, 0);
  const perCert = issuerCpuMs / COUNT;
  const rss = peakRssMb(system.functions.get("issue-serving-cert")!.process.pid);
  issuerRss.stop();
  const vs = (ours: number, theirs: number) => `${(ours / theirs).toFixed(2)}×`;
  printTable(
    `Per certificate: the burst of ${COUNT} above (issuer from /proc; requests as the kube-apiserver counted them)`,
    ["figure", "this project", "operator, limit off", "ratio"],
    [
      ["CPU ms per certificate, issuer", perCert, OPERATOR.cpuMs, vs(perCert, OPERATOR.cpuMs)],
      [
        `  of which RSA-2048 key generation (${keyCpuMs.toFixed(1)} CPU ms a key, measured here)`,
        keyCpuMs,
        "",
        "",
      ],
      ["  everything else (signing, API calls, events, JSON, GC)", perCert - keyCpuMs, "", ""],
      [
        "API requests per certificate, by the system",
        total / COUNT,
        OPERATOR.requests,
        vs(total / COUNT, OPERATOR.requests),
      ],
      ...byVerb
        .sort(([, a], [, b]) => b - a)
        .map(([k, v]): [string, number, string, string] => [`  ${k}`, v / COUNT, "", ""]),
      ["writes per certificate (create, update, patch, delete)", writes / COUNT, "", ""],
      ["issuer peak RSS, MB (whole run)", rss, OPERATOR.rssMb, vs(rss, OPERATOR.rssMb)],
      ["  peak of its anonymous memory (V8's heap, malloc, stacks), MB", issuerRss.anonMb, "", ""],
      ["  peak of its mapped files (the Node binary's pages, shared), MB", issuerRss.fileMb, "", ""],
    ],
  );
  printTable(
    "Memory of every function (the bundle as deployed, Node 24): idle after the warm-up, and the peak over the whole run",
    ["function", "idle RSS, MB", "peak RSS, MB"],
    [...system.functions]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, f]) => [name, idleRss.get(name) ?? NaN, peakRssMb(f.process.pid)]),
  );
} finally {
  issuerRss.stop();
  await system.stop();
}
