// Rotation fan-out: annotated ConfigMaps and Services, then a forced rotation through rotate-ca's admin
// endpoint; time until every bundle holds the new CA and every serving certificate is re-issued, and the API
// writes (from the kube-apiserver's audit log) against the objects that had to change.
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem } from "../test/local-system/local-system.ts";
import { annotations } from "../shared/serving-cert/annotations.ts";
import { mapLimit } from "../shared/runtime/concurrency.ts";
import { parseCertificates, isIssuedBy } from "../shared/pki/index.ts";
import { auditMark, auditSince, type AuditEvent } from "../test/support/audit.ts";
import { rotatorRules, tokenWithRules } from "../test/support/tokens.ts";
import { machine, printTable } from "./support.ts";

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
      const leaf = parseCertificates(Buffer.from(s.data?.["tls.crt"] ?? "", "base64").toString())[0];
      if (leaf && (await isIssuedBy(leaf, ca))) reissued++;
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
  await sleep(5000); // the tail of the initial events (signed-by annotations, duplicate hints) passes

  const token = await tokenWithRules(system.kc, CA_NS, "bench-rotator", rotatorRules());
  const oldBundle = (await bundle())!;
  const mark = await auditMark(system.plane);
  const t0 = performance.now();
  const res = await fetch(`${system.functions.get("rotate-ca")!.url}/rotate`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ reason: "fan-out benchmark" }),
  });
  if (res.status !== 200) throw new Error(`rotate answered ${res.status}: ${await res.text()}`);
  const rotatedAt = performance.now();
  const newBundle = async () => {
    const b = await bundle();
    return b && b !== oldBundle ? b : undefined;
  };
  let cmsAt = 0;
  let svcsAt = 0;
  for (;;) {
    const b = await newBundle();
    if (b) {
      const p = await progress(b, parseCertificates(b)[0]!);
      const now = performance.now();
      if (!cmsAt && p.current >= CONFIGMAPS) cmsAt = now;
      if (!svcsAt && p.reissued >= SERVICES) svcsAt = now;
      if (cmsAt && svcsAt) break;
    }
    if (performance.now() - t0 > 900_000) throw new Error("rotation fan-out did not finish in 15 minutes");
    await sleep(100);
  }
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
      ["rotate-ca answered, s", s(rotatedAt)],
      [`every ConfigMap holds the new bundle, s (target ≤ 10)`, s(cmsAt)],
      ["every serving certificate re-issued by the new CA, s", s(svcsAt)],
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
