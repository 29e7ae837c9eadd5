// Rotation fan-out: annotated ConfigMaps and Services, then a forced rotation through rotate-ca's admin
// endpoint; time until every bundle holds the new CA and every serving certificate is re-issued, and the API
// writes (from the kube-apiserver's audit log) against the objects that had to change.
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem } from "../dev/local-system/local-system.ts";
import { annotations } from "../shared/names.ts";
import { mapLimit } from "../shared/runtime/concurrency.ts";
import { leafIssuedBy, parseCertificates, readLeaf } from "../shared/pki/index.ts";
import { auditMark, auditSince, type AuditEvent } from "../dev/audit.ts";
import { rotatorRules, tokenWithRules } from "../dev/tokens.ts";
import { machine, printTable } from "./support.ts";
import { scrape } from "../dev/metrics.ts";

const CONFIGMAPS = Number(process.env.BENCH_CONFIGMAPS ?? 1000);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 200);
const BYSTANDERS = 200; // plain ConfigMaps and Services nobody asked to touch
const NS = "bench-fanout";
const CA_NS = "service-ca";
const INJECT = "service.beta.openshift.io/inject-cabundle";

const system = await startLocalSystem({ log: (l) => console.error(`[system] ${l}`) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
try {
  const core = system.kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  const bundle = async () =>
    (
      await core
        .readNamespacedConfigMap({ namespace: CA_NS, name: "signing-cabundle" })
        .catch(() => undefined)
    )?.data?.["ca-bundle.crt"];

  console.error(`creating ${CONFIGMAPS} + ${BYSTANDERS} ConfigMaps and ${SERVICES} + ${BYSTANDERS} Services`);
  await mapLimit(
    Array.from({ length: SERVICES + BYSTANDERS }, (_, i) => i),
    32,
    (i) =>
      core.createNamespacedService({
        namespace: NS,
        body: {
          metadata: {
            name: `svc-${i}`,
            annotations: i < SERVICES ? { [annotations.secretName]: `svc-${i}-tls` } : {},
          },
          spec: { ports: [{ port: 443 }] },
        },
      }),
  );
  await mapLimit(
    Array.from({ length: CONFIGMAPS + BYSTANDERS }, (_, i) => i),
    32,
    (i) =>
      core.createNamespacedConfigMap({
        namespace: NS,
        body: { metadata: { name: `cm-${i}`, annotations: i < CONFIGMAPS ? { [INJECT]: "true" } : {} } },
      }),
  );

  /** How many annotated ConfigMaps hold `pem`, and how many serving Secrets are issued by `ca`. */
  const progress = async (pem: string, ca: ReturnType<typeof parseCertificates>[number]) => {
    const cms = await core.listNamespacedConfigMap({ namespace: NS });
    const current = cms.items.filter((c) => c.data?.["service-ca.crt"] === pem).length;
    const secrets = await core.listNamespacedSecret({ namespace: NS });
    let reissued = 0;
    for (const s of secrets.items) {
      const leaf = readLeaf(Buffer.from(s.data?.["tls.crt"] ?? "", "base64").toString());
      if (leaf && leafIssuedBy(leaf, ca)) reissued++;
    }
    return { current, reissued };
  };
  const settle = async (label: string, pem: () => Promise<string | undefined>, timeoutMs: number) => {
    const t0 = performance.now();
    for (;;) {
      const b = await pem();
      if (b) {
        const ca = parseCertificates(b)[0]!;
        const p = await progress(b, ca);
        if (p.current >= CONFIGMAPS && p.reissued >= SERVICES) return;
        if (performance.now() - t0 > timeoutMs)
          throw new Error(
            `${label}: ${p.current}/${CONFIGMAPS} ConfigMaps, ${p.reissued}/${SERVICES} Secrets`,
          );
      }
      await sleep(250);
    }
  };
  await settle("initial issuance", bundle, 600_000);
  // The adapters still deliver the initial writes' own events (one at a time: 1,000 injections echo back as
  // 1,000 ConfigMap updates). A rotation is measured from a quiet system, not behind that backlog: once no
  // function has handled an event for 2 s.
  const quietFrom = performance.now();
  const handled = async () => {
    let n = 0;
    for (const f of system.functions.values())
      for (const [k, v] of await scrape(f.url)) if (k.startsWith("service_ca_requests_total{")) n += v;
    return n;
  };
  for (let last = -1, same = 0; same < 4 && performance.now() - quietFrom < 180_000; await sleep(500)) {
    const now = await handled();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  const backlogSeconds = (performance.now() - quietFrom) / 1000;

  const token = await tokenWithRules(system.kc, CA_NS, "bench-rotator", rotatorRules());
  const oldBundle = (await bundle())!;
  // Every change is recorded as it streams in and judged once the new CA is known: no polling load on the
  // 2 cores the system itself is using.
  const seen: Array<{ at: number; kind: "cm" | "secret"; name: string; value: string }> = [];
  const watches = await Promise.all(
    (["configmaps", "secrets"] as const).map((resource) =>
      new k8s.Watch(system.kc).watch(
        `/api/v1/namespaces/${NS}/${resource}`,
        { resourceVersion: "0" },
        (type, obj: k8s.V1ConfigMap & k8s.V1Secret) => {
          if (type !== "MODIFIED" && type !== "ADDED") return;
          const at = performance.now();
          const value =
            resource === "configmaps"
              ? (obj.data?.["service-ca.crt"] ?? "")
              : Buffer.from(obj.data?.["tls.crt"] ?? "", "base64").toString();
          seen.push({
            at,
            kind: resource === "configmaps" ? "cm" : "secret",
            name: obj.metadata!.name!,
            value,
          });
        },
        () => {},
      ),
    ),
  );
  const mark = await auditMark(system.plane);
  const t0 = performance.now();
  const res = await fetch(`${system.functions.get("rotate-ca")!.url}/rotate`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ reason: "fan-out benchmark" }),
  });
  if (res.status !== 200) throw new Error(`rotate answered ${res.status}: ${await res.text()}`);
  const rotatedAt = performance.now();
  let newPem: string | undefined;
  while (!newPem || newPem === oldBundle) {
    await sleep(200);
    newPem = await bundle();
  }
  const newCa = parseCertificates(newPem)[0]!;
  /** When the last object of a kind reached the new state, once all `want` of them have. */
  const finishedAt = (kind: "cm" | "secret", want: number, current: (v: string) => boolean) => {
    const first = new Map<string, number>();
    for (const e of seen)
      if (e.kind === kind && e.at >= t0 && !first.has(e.name) && current(e.value)) first.set(e.name, e.at);
    return first.size >= want ? Math.max(...first.values()) : undefined;
  };
  let cmsAt: number | undefined;
  let svcsAt: number | undefined;
  for (;;) {
    cmsAt ??= finishedAt("cm", CONFIGMAPS, (v) => v === newPem);
    svcsAt ??= finishedAt("secret", SERVICES, (v) => {
      const leaf = readLeaf(v);
      return Boolean(leaf && leafIssuedBy(leaf, newCa));
    });
    if (cmsAt && svcsAt) break;
    if (performance.now() - t0 > 900_000) throw new Error("rotation fan-out did not finish in 15 minutes");
    await sleep(1000);
  }
  for (const w of watches) w.abort();
  await sleep(5000); // late duplicates would show up as extra writes
  const events = await auditSince({ auditLog: system.plane.auditLog, kc: system.kc }, mark);
  const writes = events.filter(
    (e: AuditEvent) =>
      ["create", "update", "patch", "delete"].includes(e.verb) &&
      e.objectRef?.namespace === NS &&
      (e.responseStatus?.code ?? 0) < 300 &&
      e.user.username.startsWith("system:serviceaccount:service-ca:"),
  );
  const byObject = new Map<string, number>();
  for (const w of writes) {
    const key = `${w.objectRef?.resource}/${w.objectRef?.name}`;
    byObject.set(key, (byObject.get(key) ?? 0) + 1);
  }
  const count = (resource: string, pred: (name: string) => boolean) =>
    [...byObject].filter(([k]) => k.startsWith(`${resource}/`) && pred(k.slice(resource.length + 1)));
  const idx = (name: string) => Number(name.split("-")[1]);
  const cmWrites = count("configmaps", (n) => idx(n) < CONFIGMAPS);
  const secretWrites = count("secrets", () => true);
  const svcWrites = count("services", (n) => idx(n) < SERVICES);
  const bystanderWrites = [
    ...count("configmaps", (n) => idx(n) >= CONFIGMAPS),
    ...count("services", (n) => idx(n) >= SERVICES),
  ];
  const sum = (xs: [string, number][]) => xs.reduce((n, [, v]) => n + v, 0);
  const s = (ms: number) => (ms - t0) / 1000;
  printTable(
    `Rotation fan-out: ${CONFIGMAPS} annotated ConfigMaps + ${SERVICES} annotated Services, forced rotation (${machine()})`,
    ["figure", "value"],
    [
      ["the initial events' backlog drained before the rotation, s", backlogSeconds],
      ["rotate-ca answered, s", s(rotatedAt)],
      [`every ConfigMap holds the new bundle, s (target ≤ 5)`, s(cmsAt)],
      ["every serving certificate re-issued by the new CA, s (target ≤ 20)", s(svcsAt)],
      [
        "ConfigMaps that had to change / written / writes",
        `${CONFIGMAPS} / ${cmWrites.length} / ${sum(cmWrites)}`,
      ],
      [
        "Secrets that had to change / written / writes",
        `${SERVICES} / ${secretWrites.length} / ${sum(secretWrites)}`,
      ],
      [
        "Services (signed-by annotation) that had to change / written / writes",
        `${SERVICES} / ${svcWrites.length} / ${sum(svcWrites)}`,
      ],
      [`writes to ${2 * BYSTANDERS} objects nobody annotated (target 0)`, sum(bystanderWrites)],
    ],
  );
} finally {
  await system.stop();
}
