// Scan at scale: expiry-scan (the bundled function, as deployed) over N annotated Services that all hold
// current Secrets: wall time, the process's peak RSS, and the requests the API server counted.
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { startControlPlane } from "../dev/controlplane/control-plane.ts";
import { installInfra, serviceAccountKubeconfig } from "../dev/local-system/local-system.ts";
import { startFunction } from "../dev/local-system/function-hosts.ts";
import { deliver, sourceToken, pingEvent } from "../dev/events.ts";
import { buildFunctions } from "../scripts/build.ts";
import { annotations } from "../shared/names.ts";
import { hostnamesFor } from "../shared/serving-cert/reconcile.ts";
import { caKeys, MANAGED_BY_LABEL } from "../shared/names.ts";
import { mapLimit } from "../shared/runtime/concurrency.ts";
import { createKube } from "../shared/kube/client.ts";
import { createObject } from "../shared/kube/core.ts";
import {
  commonName,
  generateKeyPair,
  importPrivateKeyPem,
  parseCertificates,
  privateKeyToPem,
  signServingCertificate,
} from "../shared/pki/index.ts";
import { apiServerRequests, countsSince, machine, peakRssMb, printTable, RssSplit } from "./support.ts";
import { knativeServices } from "../dev/manifests/eventing-only.ts";

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const PER_NAMESPACE = 500;
// The control plane's Service range is a /16: past it, Services are headless (no ClusterIP to allocate; their
// certificates carry the `*.` wildcards too), which the scan judges the same way.
const HEADLESS = SERVICES > 60_000;
const CA_NS = "service-ca";
const log = (l: string) => console.error(`[scan] ${l}`);
// expiry-scan's env in infra/ (NODE_OPTIONS, REQUEST_TIMEOUT_SECONDS): the variant "as deployed" runs with it.
// BENCH_SCAN_NODE_OPTIONS ("a;b") adds variants beside it.
const deployedEnv = Object.fromEntries(
  (
    knativeServices().find((k) => k.metadata.name === "expiry-scan")?.spec.template.spec.containers[0]?.env ??
    []
  ).map((e) => [e.name, e.value]),
);
const DEPLOYED_NODE_OPTIONS = deployedEnv.NODE_OPTIONS;
const REQUEST_TIMEOUT_SECONDS = deployedEnv.REQUEST_TIMEOUT_SECONDS;
if (!DEPLOYED_NODE_OPTIONS || !REQUEST_TIMEOUT_SECONDS)
  throw new Error("infra/base/functions/expiry-scan.yaml sets no NODE_OPTIONS or REQUEST_TIMEOUT_SECONDS");

const plane = await startControlPlane({ log });
try {
  await installInfra(plane);
  const bundles = await buildFunctions(["expiry-scan"]);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(plane.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const kubeconfig = await serviceAccountKubeconfig(plane, "expiry-scan");
  const start = (nodeOptions = DEPLOYED_NODE_OPTIONS) =>
    startFunction("expiry-scan", {
      kubeconfig,
      bundle: bundles["expiry-scan"],
      logFile: join(plane.dir, "logs", "expiry-scan.log"),
      env: { LOG_LEVEL: "warn", REQUEST_TIMEOUT_SECONDS, NODE_OPTIONS: nodeOptions },
    });
  let scan = await start();
  const ping = async () => {
    const res = await deliver(
      scan.url,
      pingEvent(CA_NS, "bench", { reason: "bench" }),
      await sourceToken(kc, scan.name),
    );
    if (res.status !== 200)
      throw new Error(`expiry-scan answered ${res.status}: ${JSON.stringify(res.json)}`);
    return res.json as Record<string, unknown>;
  };
  await ping(); // creates the CA

  const caSecret = await core.readNamespacedSecret({ namespace: CA_NS, name: "signing-key" });
  const unb64 = (k: string) => Buffer.from(caSecret.data![k]!, "base64").toString();
  const caCert = parseCertificates(unb64(caKeys.cert))[0]!;
  const signer = { cert: caCert, key: await importPrivateKeyPem(unb64(caKeys.key)) };
  const caName = commonName(caCert)!;
  // One leaf key for every Secret: generating 10,000 RSA keys would measure key generation, not the scan.
  const keys = await generateKeyPair("rsa-2048");
  const keyPem = await privateKeyToPem(keys.privateKey);

  // The setup writes through the functions' keep-alive transport: client-node opens a TLS connection per request,
  // which at 100,000 Services was most of the setup's time.
  const kube = createKube(kc);
  log(`creating ${SERVICES} annotated Services with current Secrets`);
  const t0 = performance.now();
  const namespaces = Array.from({ length: Math.ceil(SERVICES / PER_NAMESPACE) }, (_, i) => `scan-${i}`);
  for (const name of namespaces) await core.createNamespace({ body: { metadata: { name } } });
  await mapLimit(
    Array.from({ length: SERVICES }, (_, i) => i),
    48,
    async (i) => {
      const namespace = namespaces[Math.floor(i / PER_NAMESPACE)]!;
      const name = `svc-${i}`;
      const svc = await createObject(kube, "Service", namespace, {
        metadata: {
          name,
          annotations: { [annotations.secretName]: `${name}-tls`, [annotations.signedBy]: caName },
        },
        spec: { ports: [{ port: 443 }], ...(HEADLESS ? { clusterIP: "None" } : {}) },
      });
      const leaf = await signServingCertificate({
        signer,
        hostnames: hostnamesFor(svc),
        now: new Date(),
        keys,
      });
      await createObject(kube, "Secret", namespace, {
        metadata: {
          name: `${name}-tls`,
          labels: MANAGED_BY_LABEL,
          annotations: {
            [annotations.originName]: name,
            [annotations.originUid]: svc.metadata!.uid!,
            [annotations.expiry]: leaf.notAfter.toISOString(),
          },
        },
        type: "kubernetes.io/tls",
        stringData: { "tls.crt": leaf.certPem, "tls.key": keyPem },
      });
      if (i % 1000 === 999) log(`${i + 1} created`);
    },
  );
  log(`created in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // A fresh process each time, as an hourly ping meets on a cluster where expiry-scan scales to zero: first as
  // infra/ deploys it, then with V8's default young generation for comparison.
  // The first scan after the setup meets a control plane still settling from it (up to 1.5x the time of the same
  // scan run later, at 100,000): it is printed, and the variants compared after it.
  const variants: Array<[string, string]> = [
    ["first scan after the setup, as deployed", DEPLOYED_NODE_OPTIONS],
    ["as deployed (NODE_OPTIONS from infra/)", DEPLOYED_NODE_OPTIONS],
    ["V8 defaults", ""],
    ...(process.env.BENCH_SCAN_NODE_OPTIONS ?? "")
      .split(";")
      .filter(Boolean)
      .map((o): [string, string] => [o, o]),
  ];
  const rows: (string | number)[][] = [];
  let detail: (string | number)[][] = [];
  for (const [label, nodeOptions] of variants) {
    await scan.process.stop();
    scan = await start(nodeOptions);
    const rssBefore = peakRssMb(scan.process.pid);
    const split = new RssSplit(scan.process.pid);
    const before = await apiServerRequests(kc);
    const started = performance.now();
    const result = await ping();
    const wall = (performance.now() - started) / 1000;
    const after = await apiServerRequests(kc);
    const rss = peakRssMb(scan.process.pid);
    split.stop();
    const delta = [...countsSince(before, after)].filter(
      ([k]) => !k.endsWith(" leases") && !k.endsWith(" events"),
    );
    const total = delta.reduce((n, [, v]) => n + v, 0);
    rows.push([
      label,
      wall,
      rss,
      `${split.anonMb.toFixed(1)} / ${split.fileMb.toFixed(1)}`,
      rssBefore,
      total,
      Number(result.pages),
      result.mostHeld === undefined ? "—" : Number(result.mostHeld),
      JSON.stringify(result.outcomes),
    ]);
    if (detail.length === 0) detail = delta.map(([k, v]) => [k, v]);
  }
  printTable(
    `Scan at scale: expiry-scan over ${SERVICES}${HEADLESS ? " headless" : ""} annotated Services with current Secrets (${machine()})`,
    [
      "process",
      `wall s (≤ ${SERVICES > 10_000 ? 30 : 5})`,
      "peak RSS MB (≤ 150)",
      "of it at most: anonymous / mapped files, MB",
      "idle RSS MB",
      "API requests",
      "pages",
      "held at most",
      "outcomes",
    ],
    rows,
  );
  printTable(
    "API requests of the deployed variant's scan (apiserver_request_total)",
    ["verb resource", "requests"],
    detail,
  );
  await scan.process.stop();
} finally {
  await plane.stop();
}
