// Fairness between tenants: a quiet tenant's annotate → Secret latency, alone and while a noisy tenant flips the
// annotation on 40 Services as fast as the API server takes it, through the real event path. Run with
// issue-serving-cert's per-namespace bound (MAX_IN_FLIGHT_PER_NAMESPACE, default 2) and without it (0), so the
// figure shows what the bound buys. Goal: the quiet tenant's p50 under noise at most 2× its quiet p50.
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem } from "../dev/local-system/local-system.ts";
import { annotations } from "../shared/names.ts";
import { Arrivals, machine, percentile, printTable } from "./support.ts";

const QUIET = Number(process.env.BENCH_COUNT ?? 20);
const NOISY = 40;
const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

async function measure(limit: number): Promise<{ alone: number[]; noisy: number[]; flips: number }> {
  const system = await startLocalSystem({
    log: (l) => console.error(`[system] ${l}`),
    functionEnv: { MAX_IN_FLIGHT_PER_NAMESPACE: String(limit) },
  });
  try {
    const core = system.kc.makeApiClient(k8s.CoreV1Api);
    for (const namespace of ["quiet", "noisy"])
      await core.createNamespace({ body: { metadata: { name: namespace } } });
    const arrivals = new Arrivals<k8s.V1Secret>(system.kc, `/api/v1/namespaces/quiet/secrets`, (s) =>
      Boolean(s.data?.["tls.crt"]),
    );
    await arrivals.start();
    const annotate = (namespace: string, name: string, secret: string) =>
      core.patchNamespacedService(
        { namespace, name, body: { metadata: { annotations: { [annotations.secretName]: secret } } } },
        merge,
      );
    const create = (namespace: string, name: string) =>
      core.createNamespacedService({
        namespace,
        body: { metadata: { name }, spec: { ports: [{ port: 443 }] } },
      });
    for (let i = 0; i < 2 * QUIET + 1; i++) await create("quiet", `q${i}`);
    for (let i = 0; i < NOISY; i++) await create("noisy", `n${i}`);
    await annotate("quiet", `q${2 * QUIET}`, "warmup-tls"); // the CA, once
    await arrivals.when("warmup-tls");
    await new Promise((r) => setTimeout(r, 2000));

    const quietRun = async (from: number) => {
      const out: number[] = [];
      for (let i = from; i < from + QUIET; i++) {
        const t0 = performance.now();
        await annotate("quiet", `q${i}`, `q${i}-tls`);
        out.push((await arrivals.when(`q${i}-tls`)) - t0);
      }
      return out;
    };
    const alone = await quietRun(0);

    // The noisy tenant: every Service's annotation flipped between two Secret names, all 40 at once, again
    // and again until the quiet tenant is done. Each flip asks for a new certificate.
    let flipping = true;
    let flips = 0;
    const noise = (async () => {
      for (let round = 0; flipping; round++)
        await Promise.all(
          Array.from({ length: NOISY }, (_, i) =>
            annotate("noisy", `n${i}`, `n${i}-${round % 2}`).then(() => flips++),
          ),
        );
    })();
    await new Promise((r) => setTimeout(r, 500)); // the noise is under way
    let noisy: number[];
    try {
      noisy = await quietRun(QUIET);
    } finally {
      flipping = false;
      await noise.catch(() => {}); // its own failure would only hide the quiet tenant's
    }
    await noise;
    arrivals.stop();
    return { alone, noisy, flips };
  } finally {
    await system.stop();
  }
}

const rows: (string | number)[][] = [];
for (const limit of [2, 0]) {
  const { alone, noisy, flips } = await measure(limit);
  const a = [...alone].sort((x, y) => x - y);
  const n = [...noisy].sort((x, y) => x - y);
  const ratio = percentile(n, 50) / percentile(a, 50);
  rows.push([
    limit === 0 ? "no bound (0)" : `${limit} per namespace`,
    percentile(a, 50),
    percentile(a, 95),
    percentile(n, 50),
    percentile(n, 95),
    ratio.toFixed(2),
    flips,
    ratio <= 2 ? "met" : `missed by ${((ratio / 2 - 1) * 100).toFixed(0)} %`,
  ]);
}
printTable(
  `Fairness: quiet tenant's annotate → Secret, alone and while another tenant flips ${NOISY} Services (${QUIET} each, ${machine()})`,
  [
    "MAX_IN_FLIGHT_PER_NAMESPACE",
    "alone p50 ms",
    "alone p95",
    "under noise p50",
    "under noise p95",
    "p50 ratio",
    "noisy flips",
    "≤ 2×",
  ],
  rows,
);
