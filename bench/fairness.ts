// Fairness between tenants: a quiet tenant's annotate → Secret latency, alone and while a noisy tenant flips the
// annotation on 40 Services as fast as the API server takes it, through the real event path. Run with
// issue-serving-cert's per-namespace bound (MAX_IN_FLIGHT_PER_NAMESPACE: the default 1, then 2) and without it (0), so the
// figure shows what the bound buys. Goal: the quiet tenant's p50 under noise at most 2× its quiet p50.
import * as k8s from "@kubernetes/client-node";
import {
  serviceAccountKubeconfig,
  startLocalSystem,
  type LocalSystem,
} from "../dev/local-system/local-system.ts";
import { annotations } from "../shared/names.ts";
import { createTenant } from "../dev/tenants.ts";
import { Arrivals, machine, percentile, printTable } from "./support.ts";

const QUIET = Number(process.env.BENCH_COUNT ?? 20);
const NOISY = 40;
const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

const GIVE_UP_MS = 60_000;
// The noisy tenant's pause between rounds of 40 flips: 1 s by default (up to 40 flips a second, each asking for a
// certificate); 0 floods the API server as fast as it takes them, which then slows every client alike (the quiet
// tenant's own write is printed to show it) and measures the API server more than the functions.
const ROUND_PAUSE_MS = Number(process.env.BENCH_NOISE_PAUSE_MS ?? 1000);

/**
 * A tenant acts as a tenant does: a ServiceAccount with the `admin` ClusterRole in its own namespace only. (As the
 * cluster admin the noise would be exempt from the API server's priority and fairness, which no tenant is.)
 */
async function tenantApi(system: LocalSystem, namespace: string): Promise<k8s.CoreV1Api> {
  await createTenant(system.kc, namespace, "tenant-admin");
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(await serviceAccountKubeconfig(system.plane, "tenant-admin", namespace));
  return kc.makeApiClient(k8s.CoreV1Api);
}

interface Measured {
  alone: number[];
  noisy: number[];
  /** The quiet tenant's own annotation write, alone and under the noise: how busy the API server itself is. */
  patchAlone: number[];
  patchNoisy: number[];
  flips: number;
  /** The quiet Secret that did not appear within GIVE_UP_MS under the noise, if one did not. */
  starved?: string;
}

async function measure(limit: number): Promise<Measured> {
  const system = await startLocalSystem({
    log: (l) => console.error(`[system] ${l}`),
    functionEnv: { MAX_IN_FLIGHT_PER_NAMESPACE: String(limit) },
  });
  try {
    const tenants = { quiet: await tenantApi(system, "quiet"), noisy: await tenantApi(system, "noisy") };
    const arrivals = new Arrivals<k8s.V1Secret>(system.kc, `/api/v1/namespaces/quiet/secrets`, (s) =>
      Boolean(s.data?.["tls.crt"]),
    );
    await arrivals.start();
    const annotate = (namespace: "quiet" | "noisy", name: string, secret: string) =>
      tenants[namespace].patchNamespacedService(
        { namespace, name, body: { metadata: { annotations: { [annotations.secretName]: secret } } } },
        merge,
      );
    const create = (namespace: "quiet" | "noisy", name: string) =>
      tenants[namespace].createNamespacedService({
        namespace,
        body: { metadata: { name }, spec: { ports: [{ port: 443 }] } },
      });
    for (let i = 0; i < 2 * QUIET + 1; i++) await create("quiet", `q${i}`);
    for (let i = 0; i < NOISY; i++) await create("noisy", `n${i}`);
    await annotate("quiet", `q${2 * QUIET}`, "warmup-tls"); // the CA, once
    await arrivals.when("warmup-tls");
    await new Promise((r) => setTimeout(r, 2000));

    const quietRun = async (from: number, out: number[], patches: number[]) => {
      for (let i = from; i < from + QUIET; i++) {
        const t0 = performance.now();
        await annotate("quiet", `q${i}`, `q${i}-tls`);
        patches.push(performance.now() - t0);
        out.push((await arrivals.when(`q${i}-tls`, GIVE_UP_MS)) - t0);
      }
    };
    const alone: number[] = [];
    const patchAlone: number[] = [];
    await quietRun(0, alone, patchAlone);

    // The noisy tenant: every Service's annotation flipped between two Secret names, all 40 at once, again
    // and again until the quiet tenant is done. Each flip asks for a new certificate.
    let flipping = true;
    let flips = 0;
    const noise = (async () => {
      for (let round = 0; flipping; round++) {
        await Promise.all(
          Array.from({ length: NOISY }, (_, i) =>
            annotate("noisy", `n${i}`, `n${i}-${round % 2}`).then(() => flips++),
          ),
        );
        if (ROUND_PAUSE_MS > 0) await new Promise((r) => setTimeout(r, ROUND_PAUSE_MS));
      }
    })();
    await new Promise((r) => setTimeout(r, 500)); // the noise is under way
    const noisy: number[] = [];
    const patchNoisy: number[] = [];
    let starved: string | undefined;
    try {
      await quietRun(QUIET, noisy, patchNoisy).catch((err: unknown) => {
        if (!String(err).includes("did not appear")) throw err;
        starved = `q${QUIET + noisy.length}-tls`;
      });
    } finally {
      flipping = false;
      await noise.catch(() => {}); // its own failure would only hide the quiet tenant's
    }
    await noise;
    arrivals.stop();
    return { alone, noisy, patchAlone, patchNoisy, flips, starved };
  } finally {
    await system.stop();
  }
}

const rows: (string | number)[][] = [];
const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);
// BENCH_LIMITS=2 measures one setting only.
for (const limit of (process.env.BENCH_LIMITS ?? "1,2,0").split(",").map(Number)) {
  const { alone, noisy, patchAlone, patchNoisy, flips, starved } = await measure(limit);
  const a = [...alone].sort((x, y) => x - y);
  const n = [...noisy].sort((x, y) => x - y);
  const ratio = percentile(n, 50) / percentile(a, 50);
  const row = [
    limit === 0 ? "no bound (0)" : `${limit} per namespace`,
    percentile(a, 50),
    percentile(a, 95),
    starved ? `> ${GIVE_UP_MS / 1000} s` : percentile(n, 50),
    starved ? `${n.length} of ${QUIET} arrived` : percentile(n, 95),
    starved ? "—" : ratio.toFixed(2),
    `${percentile(sorted(patchAlone), 50).toFixed(1)} → ${percentile(sorted(patchNoisy), 50).toFixed(1)}`,
    flips,
    starved
      ? `missed: ${starved} never came`
      : ratio <= 2
        ? "met"
        : `missed by ${((ratio / 2 - 1) * 100).toFixed(0)} %`,
  ];
  console.error(`[bench] ${row.join(" | ")}`);
  rows.push(row);
}
printTable(
  `Fairness: quiet tenant's annotate → Secret, alone and while another tenant flips ${NOISY} Services ${ROUND_PAUSE_MS ? `in rounds ${ROUND_PAUSE_MS} ms apart` : "as fast as the API server takes it"} (${QUIET} each, ${machine()})`,
  [
    "MAX_IN_FLIGHT_PER_NAMESPACE",
    "alone p50 ms",
    "alone p95",
    "under noise p50",
    "under noise p95",
    "p50 ratio",
    "its own patch p50 ms, alone → under noise",
    "noisy flips",
    "≤ 2×",
  ],
  rows,
);
