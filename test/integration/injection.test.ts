// CA bundle injection, proven with the kube-apiserver as the TLS client: webhooks, CRD conversion and an
// aggregated API served from a test host, trusted only through the injected caBundle.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:https";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { notifyFunction, notifyOk } from "../support/object-events.ts";
import { createNamespace, ensureNamespace } from "../support/namespaces.ts";
import { createTestHost, type TestHost } from "../support/netns.ts";
import { waitFor, type Tied } from "../../dev/processes.ts";
import { createBackendService, startTlsBackend } from "../support/tls-backend.ts";
import { conversionCrd } from "../support/crds.ts";
import { kubectl } from "../support/kubectl.ts";
import { createAuthority } from "../../shared/pki/index.ts";

const INJECT = "service.beta.openshift.io/inject-cabundle";
const GROUP = "scf-test.dev";
const CRD_GROUP = "conv.scf-test.dev";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let ns: string;
let targetNs: string;
let testHost: TestHost;
let backend: Tied;
const fns: Record<string, RunningFunction> = {};
const cleanup: Array<() => Promise<unknown>> = [];

const notify = (
  fn: string,
  o: { metadata?: k8s.V1ObjectMeta },
  apiVersion: string,
  kind: string,
  action: "add" | "update" = "add",
) => notifyOk(cluster.kc, fns[fn]!, o, kind, { action, apiVersion });

const tlsFailure = /x509|certificate signed by unknown authority|tls: failed to verify/i;

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  await ensureNamespace(cluster.kc, "service-ca");
  ns = await createNamespace(cluster.kc, "inject");
  targetNs = await createNamespace(cluster.kc, "webhook-target");
  const env = { LOG_LEVEL: "warn" };
  for (const name of [
    "issue-serving-cert",
    "inject-configmap",
    "inject-apiservice",
    "inject-crd",
    "inject-webhooks",
  ]) {
    fns[name] = await startFunction(name, { kubeconfig: await functionKubeconfig(cluster, name), env });
  }

  // The backend Service, its serving certificate from issue-serving-cert, and its endpoint on the test host.
  testHost = await createTestHost();
  const svc = await createBackendService(core, ns, testHost);
  await notify("issue-serving-cert", svc, "v1", "Service");
  const secret = await core.readNamespacedSecret({ namespace: ns, name: "backend-tls" });
  const dir = await mkdtemp(join(tmpdir(), "backend-"));
  await writeFile(join(dir, "tls.crt"), Buffer.from(secret.data!["tls.crt"]!, "base64"));
  await writeFile(join(dir, "tls.key"), Buffer.from(secret.data!["tls.key"]!, "base64"));
  backend = startTlsBackend(testHost, dir);
  await waitFor(
    "the backend on the test host",
    () => reachable(`https://${testHost.address}:8443/apis/${GROUP}/v1alpha1`),
    {
      timeoutMs: 30_000,
      failFast: () => (backend.running() ? undefined : `backend exited; see ${dir}/backend.log`),
    },
  );
});

after(async () => {
  for (const undo of cleanup.reverse()) await undo().catch(() => {});
  await backend?.stop();
  await testHost?.remove();
  await Promise.all(Object.values(fns).map((f) => f.process.stop()));
});

function reachable(url: string): Promise<true | undefined> {
  return new Promise((resolve) => {
    const req = request(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? true : undefined);
    });
    req.on("error", () => resolve(undefined));
    req.end();
  });
}

async function wrongBundle(): Promise<string> {
  const other = await createAuthority({ now: new Date() });
  return Buffer.from(other.certPem).toString("base64");
}

describe("inject-webhooks: the API server calls a webhook it trusts only through the injected caBundle", () => {
  it("fails with a TLS error before injection and with a wrong bundle, then admits, denies and mutates", async () => {
    const rules = [
      { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["configmaps"] },
    ];
    const namespaceSelector = { matchLabels: { "kubernetes.io/metadata.name": targetNs } };
    const clientConfig = (path: string, caBundle?: string) => ({
      service: { namespace: ns, name: "backend", path, port: 443 },
      ...(caBundle ? { caBundle } : {}),
    });
    const webhook = (name: string, path: string, caBundle?: string) => ({
      name,
      clientConfig: clientConfig(path, caBundle),
      rules,
      namespaceSelector,
      failurePolicy: "Fail",
      sideEffects: "None",
      admissionReviewVersions: ["v1"],
      timeoutSeconds: 5,
    });
    const admission = cluster.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const vwc = await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: `${ns}-validate`, annotations: { [INJECT]: "true" } },
        webhooks: [webhook("validate.scf-test.dev", "/validate")],
      },
    });
    cleanup.push(() => admission.deleteValidatingWebhookConfiguration({ name: `${ns}-validate` }));
    const mwc = await admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: `${ns}-mutate`, annotations: { [INJECT]: "TRUE" } },
        webhooks: [
          webhook("mutate.scf-test.dev", "/mutate", await wrongBundle()),
          webhook("mutate2.scf-test.dev", "/mutate"),
        ],
      },
    });
    cleanup.push(() => admission.deleteMutatingWebhookConfiguration({ name: `${ns}-mutate` }));

    const createCm = (name: string, labels: Record<string, string> = {}) =>
      core.createNamespacedConfigMap({ namespace: targetNs, body: { metadata: { name, labels } } });
    const errorText = (err: unknown) => (err instanceof k8s.ApiException ? String(err.body) : String(err));

    // Not injected (validating) and a wrong bundle (mutating): the API server cannot verify the backend.
    await waitFor(
      "webhooks active and failing on TLS",
      async () => {
        const msg = await createCm("before").then(() => "admitted", errorText);
        return tlsFailure.test(msg) ? msg : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250 },
    );

    for (const [kind, o] of [
      ["MutatingWebhookConfiguration", mwc],
      ["ValidatingWebhookConfiguration", vwc],
    ] as const) {
      assert.equal(
        (await notify("inject-webhooks", o, "admissionregistration.k8s.io/v1", kind)).outcome,
        "injected",
      );
    }
    const injected = await admission.readMutatingWebhookConfiguration({ name: `${ns}-mutate` });
    const bundle = (await core.readNamespacedConfigMap({ namespace: "service-ca", name: "signing-cabundle" }))
      .data!["ca-bundle.crt"]!;
    for (const w of injected.webhooks!)
      assert.equal(Buffer.from(w.clientConfig.caBundle!, "base64").toString(), bundle);

    await waitFor(
      "a labelled ConfigMap to be denied by the webhook",
      async () => {
        const msg = await createCm("denied", { deny: "true" }).then(() => "admitted", errorText);
        return /denied by the test webhook/.test(msg) ? msg : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    const admitted = await createCm("admitted");
    assert.equal(admitted.metadata!.labels!["mutated-by-webhook"], "true", "the mutating webhook ran");

    const rv = (await admission.readMutatingWebhookConfiguration({ name: `${ns}-mutate` })).metadata!
      .resourceVersion;
    assert.equal(
      (
        await notify(
          "inject-webhooks",
          injected,
          "admissionregistration.k8s.io/v1",
          "MutatingWebhookConfiguration",
          "update",
        )
      ).outcome,
      "current",
    );
    assert.equal(
      (await admission.readMutatingWebhookConfiguration({ name: `${ns}-mutate` })).metadata!.resourceVersion,
      rv,
      "a duplicate event writes nothing",
    );
  });
});

describe("inject-crd: a conversion webhook the API server trusts only through the injected caBundle", () => {
  it("cannot convert before injection; after it, an object stored as v1 reads back as v2", async () => {
    const ext = cluster.kc.makeApiClient(k8s.ApiextensionsV1Api);
    const crd = await ext.createCustomResourceDefinition({
      body: conversionCrd({
        group: CRD_GROUP,
        plural: "widgets",
        singular: "widget",
        kind: "Widget",
        annotations: { [INJECT]: "true" },
        service: { namespace: ns, name: "backend", path: "/convert", port: 443 },
      }),
    });
    cleanup.push(() => ext.deleteCustomResourceDefinition({ name: `widgets.${CRD_GROUP}` }));
    await waitFor("CRD established", async () => {
      const c = await ext.readCustomResourceDefinition({ name: `widgets.${CRD_GROUP}` });
      return c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True")
        ? true
        : undefined;
    });
    const custom = cluster.kc.makeApiClient(k8s.CustomObjectsApi);
    await waitFor("v1 served", async () =>
      custom
        .createNamespacedCustomObject({
          group: CRD_GROUP,
          version: "v1",
          namespace: ns,
          plural: "widgets",
          body: {
            apiVersion: `${CRD_GROUP}/v1`,
            kind: "Widget",
            metadata: { name: "w1" },
            spec: { size: 3 },
          },
        })
        .then(() => true),
    );
    const readV2 = () => kubectl(cluster, "get", `widgets.v2.${CRD_GROUP}`, "w1", "-n", ns, "-o", "json");
    await assert.rejects(readV2(), (err: Error & { stderr?: string }) =>
      tlsFailure.test(err.stderr ?? err.message),
    );

    assert.equal(
      (await notify("inject-crd", crd, "apiextensions.k8s.io/v1", "CustomResourceDefinition")).outcome,
      "injected",
    );
    const converted = await waitFor("conversion through the webhook", async () => JSON.parse(await readV2()));
    assert.equal(converted.apiVersion, `${CRD_GROUP}/v2`);
    assert.deepEqual(converted.spec, { dimensions: { size: 3 } });
  });

  it("leaves a CRD without a conversion webhook untouched", async () => {
    const ext = cluster.kc.makeApiClient(k8s.ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: `gadgets.${CRD_GROUP}`, annotations: { [INJECT]: "true" } },
        spec: {
          group: CRD_GROUP,
          scope: "Namespaced",
          names: { plural: "gadgets", singular: "gadget", kind: "Gadget" },
          versions: [
            { name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object" } } },
          ],
        },
      },
    });
    cleanup.push(() => ext.deleteCustomResourceDefinition({ name: `gadgets.${CRD_GROUP}` }));
    // The API server writes status while establishing the CRD; compare from a settled object.
    const crd = await waitFor("CRD established", async () => {
      const c = await ext.readCustomResourceDefinition({ name: `gadgets.${CRD_GROUP}` });
      return c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True")
        ? c
        : undefined;
    });
    assert.equal(
      (await notify("inject-crd", crd, "apiextensions.k8s.io/v1", "CustomResourceDefinition")).outcome,
      "not-applicable",
    );
    const after = await ext.readCustomResourceDefinition({ name: `gadgets.${CRD_GROUP}` });
    assert.equal(after.metadata!.resourceVersion, crd.metadata!.resourceVersion);
  });
});

describe("inject-apiservice: an aggregated API the API server trusts only through the injected caBundle", () => {
  it("is unavailable with a TLS error before injection, and Available with the backend's answer after", async () => {
    const reg = cluster.kc.makeApiClient(k8s.ApiregistrationV1Api);
    const name = `v1alpha1.${GROUP}`;
    const apiService = await reg.createAPIService({
      body: {
        metadata: { name, annotations: { "service.alpha.openshift.io/inject-cabundle": "true" } },
        spec: {
          group: GROUP,
          version: "v1alpha1",
          service: { namespace: ns, name: "backend", port: 443 },
          groupPriorityMinimum: 1000,
          versionPriority: 15,
        },
      },
    });
    cleanup.push(() => reg.deleteAPIService({ name }));
    const condition = async () =>
      (await reg.readAPIService({ name })).status?.conditions?.find((c) => c.type === "Available");
    const ping = () => kubectl(cluster, "get", "--raw", `/apis/${GROUP}/v1alpha1/pings/hello`);
    await waitFor("the aggregator to proxy to the backend and fail on TLS", () =>
      ping().then(
        () => undefined,
        (err: Error & { stderr?: string }) =>
          /ServiceUnavailable/.test(err.stderr ?? "") ? true : undefined,
      ),
    );
    // The client only sees a 503; the API server's own log says why: it could not verify the backend.
    await waitFor("the API server to log the TLS failure", async () => {
      const log = await readFile(join(cluster.logDir, "kube-apiserver.log"), "utf8");
      return log.split("\n").find((l) => tlsFailure.test(l) && l.includes(name));
    });

    assert.equal(
      (await notify("inject-apiservice", apiService, "apiregistration.k8s.io/v1", "APIService")).outcome,
      "injected",
    );
    await waitFor("Available=True", async () => ((await condition())?.status === "True" ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const discovery = JSON.parse(await kubectl(cluster, "get", "--raw", `/apis/${GROUP}/v1alpha1`));
    assert.equal(discovery.groupVersion, `${GROUP}/v1alpha1`);
    const answer = await waitFor("the backend's answer through the aggregator", async () =>
      JSON.parse(await ping()),
    );
    assert.equal(answer.answer, "pong from the test backend");
  });
});

describe("inject-configmap", () => {
  it("writes service-ca.crt, keeps every other key byte-for-byte, and a duplicate event writes nothing", async () => {
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: { name: "trust", annotations: { "service.alpha.openshift.io/inject-cabundle": "True" } },
        data: { "app.conf": "keep me\n  exactly\n" },
        binaryData: { "blob.bin": Buffer.from([0, 1, 2, 255]).toString("base64") },
      },
    });
    assert.equal((await notify("inject-configmap", cm, "v1", "ConfigMap")).outcome, "injected");
    const injected = await core.readNamespacedConfigMap({ namespace: ns, name: "trust" });
    const bundle = (await core.readNamespacedConfigMap({ namespace: "service-ca", name: "signing-cabundle" }))
      .data!["ca-bundle.crt"]!;
    assert.equal(injected.data!["service-ca.crt"], bundle);
    assert.equal(injected.data!["app.conf"], "keep me\n  exactly\n");
    assert.equal(injected.binaryData!["blob.bin"], cm.binaryData!["blob.bin"]);

    assert.equal(
      (await notify("inject-configmap", injected, "v1", "ConfigMap", "update")).outcome,
      "current",
    );
    assert.equal(
      (await core.readNamespacedConfigMap({ namespace: ns, name: "trust" })).metadata!.resourceVersion,
      injected.metadata!.resourceVersion,
    );
  });

  it("ignores ConfigMaps without the annotation and refuses kinds it does not manage", async () => {
    const plain = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "plain" }, data: { a: "b" } },
    });
    assert.equal((await notify("inject-configmap", plain, "v1", "ConfigMap")).outcome, "not-annotated");
    const res = await notifyFunction(cluster.kc, fns["inject-crd"]!, plain, "ConfigMap", {
      action: "update",
    });
    assert.equal(res.status, 403);
  });

  it("a change of the published bundle re-injects every annotated ConfigMap", async () => {
    const names = ["fan-a", "fan-b", "fan-c"];
    for (const n of names) {
      await core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: n, annotations: { [INJECT]: "true" } } },
      });
    }
    const bundleCm = await core.readNamespacedConfigMap({
      namespace: "service-ca",
      name: "signing-cabundle",
    });
    const result = await notify("inject-configmap", bundleCm, "v1", "ConfigMap", "update");
    assert.equal(result.outcome, "bundle-fan-out");
    for (const n of names) {
      const cm = await core.readNamespacedConfigMap({ namespace: ns, name: n });
      assert.equal(cm.data?.["service-ca.crt"], bundleCm.data!["ca-bundle.crt"]);
    }
  });
});
