// Throughput: N Services annotated at once through the real event path; certificates per second beside the raw
// RSA-2048 key-generation rate of the same cores, measured in the same run while the system is idle.
import { availableParallelism } from "node:os";
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem } from "../test/local-system/local-system.ts";
import { annotations } from "../shared/serving-cert/annotations.ts";
import { generateKeyPair } from "../shared/pki/keys.ts";
import { mapLimit } from "../shared/runtime/concurrency.ts";
import { Arrivals, machine, printTable } from "./support.ts";

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

const system = await startLocalSystem({ log: (l) => console.error(`[system] ${l}`) });
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
  const t0 = performance.now();
  await mapLimit(names, 32, create);
  const arrived = await Promise.all(names.map((n) => secrets.when(`${n}-tls`, 600_000)));
  const wall = (Math.max(...arrived) - t0) / 1000;
  secrets.stop();
  await new Promise((r) => setTimeout(r, 2000));
  const after = await rawKeyRate(KEYS);
  const raw = (before + after) / 2;
  const rate = COUNT / wall;
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
    ],
  );
} finally {
  await system.stop();
}
