// Load and races: 1,000 Services annotated at once, every event delivered to both of two issue-serving-cert
// replicas (and injection events to both of two replicas of each injector), the CA bootstrapped by whichever
// request gets there first. Run by `npm run test:load`, not `npm test`: it takes minutes.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { apiServerEvent, sourceToken } from "../../dev/events.ts";
import { asEvent } from "../support/object-events.ts";
import { conversionCrd } from "../support/crds.ts";
import { createNamespace } from "../support/namespaces.ts";
import { Broker } from "../support/broker.ts";
import { servingSecretProblems } from "../support/serving-secrets.ts";
import { auditMark, auditSince, succeeded, type AuditEvent } from "../../dev/audit.ts";
import { annotations } from "../../shared/names.ts";
import { mapLimit } from "../../shared/runtime/concurrency.ts";

const SERVICES = 1000;
const NAMESPACES = 10;
const CONFIGMAPS = 100;
const WEBHOOK_CONFIGS = 5; // of each kind
const CRDS = 2;
const APISERVICES = 2;
const CREATE_CONCURRENCY = 16;
const INJECT = "service.beta.openshift.io/inject-cabundle";
const injectors = ["inject-configmap", "inject-apiservice", "inject-crd", "inject-webhooks"] as const;
type Fn = "issue-serving-cert" | (typeof injectors)[number];

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let caNs: string;
const namespaces: string[] = [];
const replicas = new Map<Fn, RunningFunction[]>();
const broker = new Broker();
const foreign = new Map<string, string>(); // ns/name → resourceVersion
let auditStart = 0;

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  // The CA of this run alone, so "exactly one CA" counts only the bootstrap race below.
  caNs = await createNamespace(cluster.kc, "load-ca");
  for (let i = 0; i < NAMESPACES; i++) namespaces.push(await createNamespace(cluster.kc, `load-${i}`));
  const logs = await mkdtemp(join(tmpdir(), "load-"));
  for (const fn of ["issue-serving-cert", ...injectors] as const) {
    const kubeconfig = await functionKubeconfig(cluster, fn, caNs);
    const two: RunningFunction[] = [];
    for (const r of [0, 1])
      two.push(
        await startFunction(fn, {
          kubeconfig,
          logFile: join(logs, `${fn}-${r}.log`),
          env: { LOG_LEVEL: "warn", CA_NAMESPACE: caNs },
        }),
      );
    replicas.set(fn, two);
  }
  // Secrets that are not ours: two bystanders per namespace, and one whose name an annotated Service asks for.
  for (const ns of namespaces) {
    for (const name of ["bystander-a", "bystander-b", "taken"]) {
      const s = await core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name }, type: "Opaque", data: { v: Buffer.from(name).toString("base64") } },
      });
      foreign.set(`${ns}/${name}`, s.metadata!.resourceVersion!);
    }
  }
  auditStart = await auditMark(cluster);
});
after(() => Promise.all([...replicas.values()].flat().map((r) => r.process.stop())));

/** The same event to both replicas of `fn`, at once, as two subscribers of one source would get it. */
function toBoth(fn: Fn, o: { metadata?: k8s.V1ObjectMeta }, kind: string, apiVersion = "v1") {
  const event = apiServerEvent(asEvent(o, kind, apiVersion), "add");
  return Promise.all(
    replicas.get(fn)!.map((r, i) =>
      broker.send({
        target: () => r.url,
        event,
        token: () => sourceToken(cluster.kc, fn),
        label: `${fn}#${i} ${kind} ${o.metadata?.namespace ?? ""}/${o.metadata?.name}`,
      }),
    ),
  );
}

const figures: string[] = [];
const report = (line: string) => {
  figures.push(line);
  console.log(`reliability: load ${line}`);
};

describe(`${SERVICES} Services at once`, () => {
  it("every annotated Service gets one valid Secret, no foreign Secret is overwritten, and there is one CA", async () => {
    const started = performance.now();
    const admission = cluster.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const ext = cluster.kc.makeApiClient(k8s.ApiextensionsV1Api);
    const reg = cluster.kc.makeApiClient(k8s.ApiregistrationV1Api);

    // Injection targets first: their events arrive before any CA exists (503, redelivered later).
    const targets: Array<() => Promise<unknown>> = [];
    for (let i = 0; i < CONFIGMAPS; i++)
      targets.push(async () => {
        const cm = await core.createNamespacedConfigMap({
          namespace: namespaces[i % NAMESPACES]!,
          body: { metadata: { name: `trust-${i}`, annotations: { [INJECT]: "true" } }, data: { keep: "me" } },
        });
        return toBoth("inject-configmap", cm, "ConfigMap");
      });
    const hook = (name: string) => ({
      name,
      clientConfig: { service: { namespace: namespaces[0]!, name: "hook", path: "/x" } },
      rules: [
        { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["nothing-matches"] },
      ],
      failurePolicy: "Ignore",
      sideEffects: "None",
      admissionReviewVersions: ["v1"],
    });
    for (let i = 0; i < WEBHOOK_CONFIGS; i++) {
      const meta = (kind: string) => ({ name: `load-${kind}-${i}`, annotations: { [INJECT]: "true" } });
      targets.push(async () => {
        const v = await admission.createValidatingWebhookConfiguration({
          body: { metadata: meta("v"), webhooks: [hook("a.load.dev"), hook("b.load.dev")] },
        });
        return toBoth(
          "inject-webhooks",
          v,
          "ValidatingWebhookConfiguration",
          "admissionregistration.k8s.io/v1",
        );
      });
      targets.push(async () => {
        const m = await admission.createMutatingWebhookConfiguration({
          body: { metadata: meta("m"), webhooks: [hook("a.load.dev")] },
        });
        return toBoth(
          "inject-webhooks",
          m,
          "MutatingWebhookConfiguration",
          "admissionregistration.k8s.io/v1",
        );
      });
    }
    for (let i = 0; i < CRDS; i++)
      targets.push(async () => {
        const crd = await ext.createCustomResourceDefinition({
          body: conversionCrd({
            group: "load.scf-test.dev",
            plural: `loads${i}`,
            singular: `load${i}`,
            kind: `Load${i}`,
            annotations: { [INJECT]: "true" },
            service: { namespace: namespaces[0]!, name: "hook", path: "/convert" },
          }),
        });
        return toBoth("inject-crd", crd, "CustomResourceDefinition", "apiextensions.k8s.io/v1");
      });
    for (let i = 0; i < APISERVICES; i++)
      targets.push(async () => {
        const api = await reg.createAPIService({
          body: {
            metadata: { name: `v1alpha${i}.load.scf-test.dev`, annotations: { [INJECT]: "true" } },
            spec: {
              group: "load.scf-test.dev",
              version: `v1alpha${i}`,
              service: { namespace: namespaces[0]!, name: "hook", port: 443 },
              groupPriorityMinimum: 1000,
              versionPriority: 15,
            },
          },
        });
        return toBoth("inject-apiservice", api, "APIService", "apiregistration.k8s.io/v1");
      });
    await mapLimit(targets, CREATE_CONCURRENCY, (t) => t());

    // The Services: created CREATE_CONCURRENCY at a time, each event to both issuers as soon as it exists.
    const wanted: Array<{ ns: string; service: string; secret: string }> = [];
    const specs: Array<{ ns: string; name: string; secret: string }> = [];
    for (let i = 0; i < SERVICES; i++) {
      const ns = namespaces[i % NAMESPACES]!;
      specs.push({ ns, name: `svc-${i}`, secret: `svc-${i}-tls` });
      wanted.push({ ns, service: `svc-${i}`, secret: `svc-${i}-tls` });
    }
    for (const ns of namespaces) specs.push({ ns, name: "wants-taken", secret: "taken" });
    const creating = performance.now();
    await mapLimit(specs, CREATE_CONCURRENCY, async ({ ns, name, secret }) => {
      const svc = await core.createNamespacedService({
        namespace: ns,
        body: {
          metadata: { name, annotations: { [annotations.secretName]: secret } },
          spec: { ports: [{ port: 443 }] },
        },
      });
      await toBoth("issue-serving-cert", svc, "Service");
    });
    const createdIn = (performance.now() - creating) / 1000;

    // The published bundle appeared (its source would say so): every injector replica fans out.
    const bundleCm = await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" });
    await Promise.all(injectors.map((fn) => toBoth(fn, bundleCm, "ConfigMap")));
    const rounds = await broker.redeliver({ rounds: 20, concurrency: 8, pauseMs: 1000 });
    assert.equal(broker.pending, 0, "every event eventually answered 2xx");
    const wall = (performance.now() - started) / 1000;

    // ---- What a user would check. ----
    const checking = performance.now();
    const bundle = (await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" })).data![
      "ca-bundle.crt"
    ]!;
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 1, "one CA in the bundle");
    const secrets = new Map<string, k8s.V1Secret>();
    for (const ns of namespaces)
      for (const s of (await core.listNamespacedSecret({ namespace: ns })).items)
        secrets.set(`${ns}/${s.metadata!.name}`, s);
    const lost = wanted.filter((w) => !secrets.has(`${w.ns}/${w.secret}`));
    assert.equal(lost.length, 0, `lost: ${lost.map((l) => l.secret).join(", ")}`);
    const problems = await servingSecretProblems(
      wanted.map((w) => ({ secret: secrets.get(`${w.ns}/${w.secret}`)!, service: w.service })),
      bundle,
    );
    assert.deepEqual(problems, []);
    const overwritten = [...foreign].filter(
      ([key, rv]) => secrets.get(key)?.metadata?.resourceVersion !== rv,
    );
    assert.deepEqual(overwritten, [], "foreign Secrets overwritten");
    assert.equal(
      secrets.size,
      wanted.length + foreign.size,
      "no Secret beyond one per Service and the foreign ones",
    );

    // From the audit log: the CA created once, each serving Secret written once.
    const audit = await auditSince(cluster, auditStart);
    const secretWrites = (ns: string) =>
      audit.filter(
        (e: AuditEvent) =>
          e.objectRef?.resource === "secrets" &&
          e.objectRef.namespace === ns &&
          ["create", "update", "patch"].includes(e.verb),
      );
    const caWrites = secretWrites(caNs).filter((e) => e.verb === "create");
    assert.equal(caWrites.filter(succeeded).length, 1, "the CA Secret was created exactly once");
    const perSecret = new Map<string, number>();
    let refused = 0;
    for (const ns of namespaces)
      for (const e of secretWrites(ns)) {
        if (!succeeded(e)) {
          refused++;
          continue;
        }
        const key = `${ns}/${e.objectRef?.name ?? "?"}`;
        perSecret.set(key, (perSecret.get(key) ?? 0) + 1);
      }
    const twice = [...perSecret].filter(([, n]) => n !== 1);
    assert.deepEqual(twice, [], "every serving Secret written exactly once");
    assert.equal(perSecret.size, SERVICES);

    // Injection, by both replicas of each injector.
    const b64 = Buffer.from(bundle).toString("base64");
    const stale: string[] = [];
    for (let i = 0; i < CONFIGMAPS; i++) {
      const cm = await core.readNamespacedConfigMap({
        namespace: namespaces[i % NAMESPACES]!,
        name: `trust-${i}`,
      });
      if (cm.data?.["service-ca.crt"] !== bundle || cm.data?.keep !== "me")
        stale.push(`ConfigMap trust-${i}`);
    }
    for (let i = 0; i < WEBHOOK_CONFIGS; i++) {
      const v = await admission.readValidatingWebhookConfiguration({ name: `load-v-${i}` });
      const m = await admission.readMutatingWebhookConfiguration({ name: `load-m-${i}` });
      if (!v.webhooks!.every((w) => w.clientConfig.caBundle === b64)) stale.push(`load-v-${i}`);
      if (!m.webhooks!.every((w) => w.clientConfig.caBundle === b64)) stale.push(`load-m-${i}`);
    }
    for (let i = 0; i < CRDS; i++) {
      const crd = await ext.readCustomResourceDefinition({ name: `loads${i}.load.scf-test.dev` });
      if (crd.spec.conversion?.webhook?.clientConfig?.caBundle !== b64) stale.push(`CRD loads${i}`);
    }
    for (let i = 0; i < APISERVICES; i++) {
      const api = await reg.readAPIService({ name: `v1alpha${i}.load.scf-test.dev` });
      if (api.spec?.caBundle !== b64) stale.push(`APIService v1alpha${i}`);
    }
    assert.deepEqual(stale, [], "injection targets without the bundle");
    const checkedIn = (performance.now() - checking) / 1000;

    const s = broker.stats;
    report(
      `${specs.length} Services (${SERVICES} + ${NAMESPACES} asking for a foreign Secret's name) in ${NAMESPACES} namespaces, created ${CREATE_CONCURRENCY} at a time in ${createdIn.toFixed(1)} s; every event to both of 2 issue-serving-cert replicas; ${targets.length} injection targets, each event to both of 2 replicas of ${injectors.length} injectors`,
    );
    report(
      `wall time ${wall.toFixed(1)} s (all ${SERVICES} Secrets issued and every event answered 2xx); ${s.attempts} deliveries, ${s.failed} answered 5xx (CA or bundle not there yet) and redelivered in ${rounds} round(s), ${s.rejected.length} 4xx`,
    );
    report(
      `${SERVICES} valid Secrets (openssl verify against the bundle, key matches, names), 0 lost, each written exactly once (${refused} racing writes refused by the API server); 0 of ${foreign.size} foreign Secrets overwritten; 1 CA (created once, ${caWrites.length - 1} racing bootstrap creates refused 409); checked in ${checkedIn.toFixed(1)} s`,
    );
    report(
      `injection: ${CONFIGMAPS} ConfigMaps, ${WEBHOOK_CONFIGS * 2} webhook configurations, ${CRDS} CRDs, ${APISERVICES} APIServices all carry the bundle`,
    );
    assert.deepEqual(
      s.rejected.map((r) => `${r.label}: ${r.status}`),
      [],
      "no delivery refused",
    );
  });
});
