// What one namespace created costs the system as deployed, where Knative's own controller renders the adapters:
// how many adapter Deployments it rolls, how many SubjectAccessReviews its controller sends, and how long until
// every adapter runs one pod again. Measured with the namespaces a fresh cluster has, then again once EXTRA
// (default 100) more exist, since both costs grow with the namespaces a source selects.
import { adapterDeployments, startDeployedSystem } from "../dev/cluster/deployed-system.ts";
import { apiServerRequests, countsSince, machine, printTable } from "./support.ts";

const EXTRA = Number(process.env.BENCH_EXTRA_NAMESPACES ?? 100);
const ROUNDS = Number(process.env.BENCH_COUNT ?? 3);

const log = (l: string) => console.error(`[system] ${l}`);
const system = await startDeployedSystem({ log });

const adapterGenerations = async () =>
  new Map((await adapterDeployments(system.kubectl)).map((d) => [d.name, d.generation]));

const namespaceCount = async () =>
  (await system.kubectl("get", "namespaces", "-o", "name")).split("\n").filter(Boolean).length;

let created = 0;
async function oneNamespace(): Promise<(string | number)[]> {
  const existing = await namespaceCount();
  const generations = await adapterGenerations();
  const before = await apiServerRequests(system.kc);
  const started = performance.now();
  await system.kubectl("create", "namespace", `churn-${++created}`);
  await system.adaptersSettled();
  const seconds = (performance.now() - started) / 1000;
  const requests = countsSince(before, await apiServerRequests(system.kc));
  const after = await adapterGenerations();
  const rolled = [...after].filter(([name, g]) => generations.get(name) !== g).length;
  const reviews = [...requests]
    .filter(([k]) => k.endsWith(" subjectaccessreviews"))
    .reduce((a, [, v]) => a + v, 0);
  return [existing, `${rolled} of ${after.size}`, reviews, seconds];
}

try {
  const rows: (string | number)[][] = [];
  for (let i = 0; i < ROUNDS; i++) rows.push(await oneNamespace());
  log(`creating ${EXTRA} more namespaces`);
  for (let i = 0; i < EXTRA; i++) await system.kubectl("create", "namespace", `extra-${i}`);
  await system.adaptersSettled();
  for (let i = 0; i < ROUNDS; i++) rows.push(await oneNamespace());
  printTable(
    `One namespace created, the system as deployed (${machine()}, shared with the cluster)`,
    [
      "namespaces before",
      "adapter Deployments rolled",
      "SubjectAccessReviews (Knative's controller)",
      "until every adapter runs one pod, s",
    ],
    rows,
  );
} finally {
  await system.stop();
}
