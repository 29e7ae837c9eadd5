// The system as deployed, end to end through the real event path: kubectl → API server → Knative's adapters →
// functions running under their own ServiceAccounts → API server. No handler is called directly.
import { openssl } from "../support/tls.ts";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import {
  startLocalSystem,
  markPingSourceReady,
  type ApiServerSource,
  type LocalSystem,
} from "../../dev/local-system/local-system.ts";
import { startFunction } from "../../dev/local-system/function-hosts.ts";
import { apiServerEvent, deliver, sourceToken, type ObjectLike } from "../../dev/events.ts";
import { kubectl } from "../support/kubectl.ts";
import { waitFor } from "../../dev/processes.ts";
import { scrape } from "../../dev/metrics.ts";

let system: LocalSystem;
let core: k8s.CoreV1Api;
const cluster = () => ({ kubectl: system.plane.kubectl, kubeconfig: system.plane.kubeconfig });
/** `kubectl -n <ns> annotate <kind> <name> <key=value>`, as a user would. */
const annotate = (ns: string, kind: string, name: string, keyValue: string) =>
  kubectl(cluster(), "-n", ns, "annotate", kind, name, keyValue);

before(async () => {
  system = await startLocalSystem({
    // Objects that exist before the sources start produce no events; the start-up repair round must cover them.
    beforeSources: async (kc) => {
      const c = kc.makeApiClient(k8s.CoreV1Api);
      await c.createNamespace({ body: { metadata: { name: "early" } } });
      await c.createNamespacedService({
        namespace: "early",
        body: {
          metadata: {
            name: "old",
            annotations: { "service.beta.openshift.io/serving-cert-secret-name": "old-tls" },
          },
          spec: { ports: [{ port: 443 }] },
        },
      });
      await c.createNamespacedConfigMap({
        namespace: "early",
        body: {
          metadata: {
            name: "old-trust",
            annotations: { "service.beta.openshift.io/inject-cabundle": "true" },
          },
        },
      });
    },
    log: (l) => console.log(`[local-system] ${l}`),
    functionEnv: { LOG_LEVEL: "info" },
  });
  core = system.kc.makeApiClient(k8s.CoreV1Api);
  await kubectl(cluster(), "create", "namespace", "shop");
});
after(() => system?.stop());

describe("through the real event path", () => {
  it("objects annotated before the event sources started are converged at start-up", async () => {
    const secret = await core.readNamespacedSecret({ namespace: "early", name: "old-tls" });
    assert.equal(secret.type, "kubernetes.io/tls");
    const cm = await core.readNamespacedConfigMap({ namespace: "early", name: "old-trust" });
    assert.match(cm.data?.["service-ca.crt"] ?? "", /BEGIN CERTIFICATE/);
  });

  it("kubectl annotate svc → a TLS Secret", async () => {
    await kubectl(cluster(), "-n", "shop", "create", "service", "clusterip", "web", "--tcp=443:8443");
    await annotate("shop", "service", "web", "service.beta.openshift.io/serving-cert-secret-name=web-tls");
    const secret = await waitFor(
      "the Secret",
      () => core.readNamespacedSecret({ namespace: "shop", name: "web-tls" }),
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.equal(secret.type, "kubernetes.io/tls");
    const crt = Buffer.from(secret.data!["tls.crt"]!, "base64").toString();
    assert.match(crt, /BEGIN CERTIFICATE/);
  });

  it("kubectl annotate svc with Alauda's annotation → the four names; short names on request for OpenShift's", async () => {
    const sans = async (secretName: string) => {
      const secret = await waitFor(
        `Secret ${secretName}`,
        () => core.readNamespacedSecret({ namespace: "shop", name: secretName }).catch(() => undefined),
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      const crt = Buffer.from(secret.data!["tls.crt"]!, "base64").toString();
      const text = await openssl(["x509", "-noout", "-ext", "subjectAltName", "-in", "tls.crt"], {
        "tls.crt": crt,
      });
      return [...text.matchAll(/DNS:([^,\s]+)/g)].map((m) => m[1]);
    };
    await kubectl(cluster(), "-n", "shop", "create", "service", "clusterip", "api", "--tcp=443:8443");
    await annotate("shop", "service", "api", "service.alauda.io/serving-cert-secret-name=api-tls");
    assert.deepEqual(await sans("api-tls"), [
      "api",
      "api.shop",
      "api.shop.svc",
      "api.shop.svc.cluster.local",
    ]);

    await annotate("shop", "service", "web", "service.beta.openshift.io/serving-cert-short-names=true");
    const four = await waitFor(
      "web-tls re-issued with the short names",
      async () => ((await sans("web-tls")).length === 4 ? sans("web-tls") : undefined),
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    assert.deepEqual(four, ["web", "web.shop", "web.shop.svc", "web.shop.svc.cluster.local"]);
  });

  it("deleting the Secret re-creates it (Secret delete event)", async () => {
    const before = await core.readNamespacedSecret({ namespace: "shop", name: "web-tls" });
    await kubectl(cluster(), "-n", "shop", "delete", "secret", "web-tls");
    const again = await waitFor(
      "the re-created Secret",
      async () => {
        const s = await core.readNamespacedSecret({ namespace: "shop", name: "web-tls" });
        return s.metadata!.uid !== before.metadata!.uid ? s : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.notEqual(again.data!["tls.crt"], before.data!["tls.crt"]);
  });

  it("kubectl annotate cm → service-ca.crt, other keys kept", async () => {
    await kubectl(cluster(), "-n", "shop", "create", "configmap", "trust", "--from-literal=app.conf=keep");
    await annotate("shop", "configmap", "trust", "service.beta.openshift.io/inject-cabundle=true");
    const bundle = (await core.readNamespacedConfigMap({ namespace: "service-ca", name: "signing-cabundle" }))
      .data!["ca-bundle.crt"];
    const cm = await waitFor(
      "the injected bundle",
      async () => {
        const c = await core.readNamespacedConfigMap({ namespace: "shop", name: "trust" });
        return c.data?.["service-ca.crt"] ? c : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.equal(cm.data!["service-ca.crt"], bundle);
    assert.equal(cm.data!["app.conf"], "keep");
  });

  it("an annotated webhook configuration → caBundle on every webhook", async () => {
    const admission = system.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const webhook = (name: string) => ({
      name,
      clientConfig: { service: { namespace: "shop", name: "web", path: "/validate" } },
      rules: [
        { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["nothing-matches"] },
      ],
      failurePolicy: "Ignore",
      sideEffects: "None",
      admissionReviewVersions: ["v1"],
    });
    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: "e2e", annotations: { "service.beta.openshift.io/inject-cabundle": "true" } },
        webhooks: [webhook("a.e2e.dev"), webhook("b.e2e.dev")],
      },
    });
    const vwc = await waitFor(
      "caBundle on both webhooks",
      async () => {
        const v = await admission.readValidatingWebhookConfiguration({ name: "e2e" });
        return v.webhooks!.every((w) => w.clientConfig.caBundle) ? v : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.equal(vwc.webhooks!.length, 2);
  });

  it("a change to the CA's own Secret never reaches issue-serving-cert; a serving Secret's does", async () => {
    const url = system.functions.get("issue-serving-cert")!.url;
    const refused = async () =>
      [...(await scrape(url))]
        .filter(([k]) => k.startsWith("service_ca_requests_total{") && k.includes('status="403"'))
        .reduce((n, [, v]) => n + v, 0);
    const before = await refused();
    const old = await core.readNamespacedSecret({ namespace: "shop", name: "web-tls" });
    // One source delivers both, in order: once the deleted serving Secret is back, the CA Secret's event (had
    // the source sent it) has been handled too.
    await annotate("service-ca", "secret", "signing-key", "example.com/touched=1");
    await kubectl(cluster(), "-n", "shop", "delete", "secret", "web-tls");
    await waitFor(
      "web-tls re-created",
      async () => {
        const s = await core
          .readNamespacedSecret({ namespace: "shop", name: "web-tls" })
          .catch(() => undefined);
        return s && s.metadata!.uid !== old.metadata!.uid ? s : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.equal(await refused(), before, "no event about the CA Secret reached issue-serving-cert");
  });

  it("a PingSource tick drives expiry-scan", async () => {
    // Its own PingSource, ticking every 2 s for a moment: a new one would have no identity expiry-scan accepts.
    const co = system.kc.makeApiClient(k8s.CustomObjectsApi);
    const ping = {
      group: "sources.knative.dev",
      version: "v1",
      namespace: "service-ca",
      plural: "pingsources",
    };
    const original = (await co.getNamespacedCustomObject({ ...ping, name: "expiry-scan-hourly" })) as {
      spec: { schedule: string; sink: { audience?: string } };
    };
    const setSchedule = async (schedule: string) => {
      const patched = (await co.patchNamespacedCustomObject(
        { ...ping, name: "expiry-scan-hourly", body: { spec: { schedule } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      )) as { metadata: { generation: number } };
      await markPingSourceReady(
        system.plane,
        "expiry-scan-hourly",
        system.functions.get("expiry-scan")!.url,
        patched.metadata.generation,
        original.spec.sink.audience,
      );
    };
    await setSchedule("*/2 * * * * *");
    try {
      const line = await waitFor(
        "a scan triggered by the tick",
        async () => {
          const log = await readFile(join(system.plane.dir, "logs", "expiry-scan.log"), "utf8");
          return log
            .split("\n")
            .find((l) => l.includes("/pingsources/expiry-scan-hourly") && l.includes('"outcome":"scanned"'));
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      assert.match(line, /"ceType":"dev.knative.sources.ping"/);
    } finally {
      await setSchedule(original.spec.schedule);
    }
  });
});

describe("infra/ as deployed", () => {
  it("kubectl apply -k infra/ --dry-run=server passes against Knative's own CRD schemas", async () => {
    const out = await kubectl(
      cluster(),
      "apply",
      "-k",
      join(import.meta.dirname, "../../infra"),
      "--dry-run=server",
    );
    assert.match(
      out,
      /service\.serving\.knative\.dev\/issue-serving-cert (unchanged|configured) \(server dry run\)/,
    );
    assert.match(
      out,
      /apiserversource\.sources\.knative\.dev\/services (unchanged|configured) \(server dry run\)/,
    );
    assert.match(
      out,
      /pingsource\.sources\.knative\.dev\/rotate-ca-daily (unchanged|configured) \(server dry run\)/,
    );
  });

  it("least privilege: the RBAC matrix, checked by the API server", async () => {
    const authz = system.kc.makeApiClient(k8s.AuthorizationV1Api);
    type Row = [
      sa: string,
      verb: string,
      group: string,
      resource: string,
      namespace: string | undefined,
      name: string | undefined,
      allowed: boolean,
    ];
    const signers = ["issue-serving-cert", "expiry-scan", "rotate-ca", "sign-csr"];
    const injectors = ["inject-configmap", "inject-apiservice", "inject-crd", "inject-webhooks"];
    const rows: Row[] = [
      // What each function needs.
      ["issue-serving-cert", "get", "", "services", "shop", "web", true],
      ["issue-serving-cert", "patch", "", "services", "shop", "web", true],
      ["issue-serving-cert", "create", "", "secrets", "shop", undefined, true],
      ["issue-serving-cert", "update", "", "secrets", "shop", "web-tls", true],
      ["issue-serving-cert", "create", "", "events", "shop", undefined, true],
      ["expiry-scan", "list", "", "services", undefined, undefined, true],
      [
        "expiry-scan",
        "patch",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        undefined,
        "w",
        true,
      ],
      ["rotate-ca", "update", "", "secrets", "service-ca", "signing-key", true],
      ["rotate-ca", "create", "authentication.k8s.io", "tokenreviews", undefined, undefined, true],
      ["rotate-ca", "create", "authorization.k8s.io", "subjectaccessreviews", undefined, undefined, true],
      ["inject-configmap", "patch", "", "configmaps", "shop", "trust", true],
      ["inject-configmap", "list", "", "configmaps", undefined, undefined, true],
      ["inject-apiservice", "patch", "apiregistration.k8s.io", "apiservices", undefined, "v1.x", true],
      ["inject-crd", "patch", "apiextensions.k8s.io", "customresourcedefinitions", undefined, "a.b", true],
      [
        "inject-webhooks",
        "patch",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        undefined,
        "w",
        true,
      ],
      [
        "inject-webhooks",
        "patch",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        undefined,
        "w",
        true,
      ],
      ...injectors
        .filter((i) => i !== "inject-configmap")
        .map((i): Row => [i, "get", "", "configmaps", "service-ca", "signing-cabundle", true]),
      // The CA key: only the signers.
      ...signers.map((s): Row => [s, "get", "", "secrets", "service-ca", "signing-key", true]),
      ...injectors.map((i): Row => [i, "get", "", "secrets", "service-ca", "signing-key", false]),
      // Injectors cannot read Secrets at all; nobody may list Secrets cluster-wide or in a namespace.
      ...injectors.map((i): Row => [i, "get", "", "secrets", "shop", "web-tls", false]),
      // expiry-scan lists (never watches) Secrets: pages instead of one GET per Service. Nobody else may.
      ["expiry-scan", "list", "", "secrets", undefined, undefined, true],
      ...[...signers, ...injectors]
        .filter((f) => f !== "expiry-scan")
        .map((f): Row => [f, "list", "", "secrets", undefined, undefined, false]),
      ...[...signers, ...injectors].map((f): Row => [f, "watch", "", "secrets", undefined, undefined, false]),
      ...[...signers, ...injectors]
        .filter((f) => f !== "expiry-scan")
        .map((f): Row => [f, "list", "", "secrets", "shop", undefined, false]),
      // Nothing beyond the job.
      ["rotate-ca", "get", "", "secrets", "shop", "web-tls", false],
      ["rotate-ca", "patch", "", "services", "shop", "web", false],
      ["inject-configmap", "patch", "", "services", "shop", "web", false],
      ["inject-crd", "patch", "apiregistration.k8s.io", "apiservices", undefined, "v1.x", false],
      ["issue-serving-cert", "patch", "", "configmaps", "shop", "trust", false],
      ["issue-serving-cert", "delete", "", "secrets", "shop", "web-tls", false],
      ["expiry-scan", "delete", "", "services", "shop", "web", false],
      // sign-csr signs for its own signerName only, and reads the CA without being able to replace it.
      ["sign-csr", "sign", "certificates.k8s.io", "signers", undefined, "service-ca.dev/serving", true],
      [
        "sign-csr",
        "sign",
        "certificates.k8s.io",
        "signers",
        undefined,
        "kubernetes.io/kube-apiserver-client",
        false,
      ],
      ["sign-csr", "get", "certificates.k8s.io", "certificatesigningrequests", undefined, "any", true],
      ["sign-csr", "update", "", "secrets", "service-ca", "signing-key", false],
      ["sign-csr", "patch", "", "services", "shop", "web", false],
      [
        "source-csrs",
        "watch",
        "certificates.k8s.io",
        "certificatesigningrequests",
        undefined,
        undefined,
        true,
      ],
      ["source-csrs", "get", "", "secrets", "service-ca", "signing-key", false],
      // distribute-ca writes its copies and nothing of the CA but the bundle it reads.
      ["distribute-ca", "patch", "", "configmaps", "shop", "service-ca-bundle", true],
      ["distribute-ca", "patch", "", "secrets", "shop", "service-root-ca", true],
      ["distribute-ca", "get", "", "secrets", "shop", "web-tls", false],
      ["distribute-ca", "get", "", "secrets", "service-ca", "signing-key", false],
      ["distribute-ca", "watch", "", "secrets", undefined, undefined, false],
      ["source-namespaces", "watch", "", "namespaces", undefined, undefined, true],
      ["source-namespaces", "get", "", "secrets", "service-ca", "signing-key", false],
      ["source-ca-copies", "watch", "", "configmaps", undefined, undefined, true],
      ["source-ca-copies", "get", "", "secrets", "service-ca", "signing-key", false],
      // Event sources read only what they watch.
      ["source-services", "watch", "", "services", undefined, undefined, true],
      ["source-services", "get", "", "secrets", "shop", "web-tls", false],
      ["source-ca-state", "watch", "", "configmaps", "service-ca", undefined, true],
      ["source-ca-state", "get", "", "secrets", "service-ca", "signing-key", false],
      ["source-configmaps", "get", "", "secrets", "service-ca", "signing-key", false],
      [
        "source-webhooks",
        "watch",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        undefined,
        undefined,
        true,
      ],
      [
        "source-webhooks",
        "patch",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        undefined,
        "w",
        false,
      ],
    ];
    const wrong: string[] = [];
    for (const [sa, verb, group, resource, namespace, name, allowed] of rows) {
      const review = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: `system:serviceaccount:service-ca:${sa}`,
            groups: ["system:serviceaccounts", "system:serviceaccounts:service-ca", "system:authenticated"],
            resourceAttributes: { verb, group, resource, namespace, name },
          },
        },
      });
      if (Boolean(review.status?.allowed) !== allowed)
        wrong.push(
          `${sa} ${verb} ${group}/${resource} ${namespace ?? "*"}/${name ?? "*"}: expected ${allowed ? "allowed" : "denied"}`,
        );
    }
    assert.deepEqual(wrong, [], `${rows.length} rows checked`);
  });

  it("a source of cluster-scoped kinds names no namespaces, so a new namespace does not roll its adapter", async () => {
    // Knative puts the names of every namespace a selector matches into the adapter's configuration, so any
    // namespace created or deleted rolls the adapter of a source that has one, and its controller checks the
    // source's rights in every namespace. A cluster-scoped kind is watched cluster-wide without one.
    const sources = (await system.kc.makeApiClient(k8s.CustomObjectsApi).listNamespacedCustomObject({
      group: "sources.knative.dev",
      version: "v1",
      namespace: "service-ca",
      plural: "apiserversources",
    })) as { items: ApiServerSource[] };
    const namespaced = new Map<string, boolean>();
    for (const apiVersion of new Set(
      sources.items.flatMap((s) => s.spec.resources.map((r) => r.apiVersion)),
    )) {
      const path = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      const list = JSON.parse(await kubectl(cluster(), "get", "--raw", path)) as {
        resources: Array<{ name: string; kind: string; namespaced: boolean }>;
      };
      for (const r of list.resources)
        if (!r.name.includes("/")) namespaced.set(`${apiVersion}/${r.kind}`, r.namespaced);
    }
    const wrong: string[] = [];
    let clusterScoped = 0;
    for (const s of sources.items) {
      const scopes = s.spec.resources.map((r) => namespaced.get(`${r.apiVersion}/${r.kind}`));
      assert.ok(!scopes.includes(undefined), `${s.metadata.name}: every kind it watches is served`);
      if (scopes.some(Boolean)) continue;
      clusterScoped++;
      if (s.spec.namespaceSelector !== undefined) wrong.push(s.metadata.name);
    }
    assert.ok(clusterScoped >= 5, `${clusterScoped} sources of cluster-scoped kinds`);
    assert.deepEqual(wrong, [], "sources of cluster-scoped kinds with a namespaceSelector");
  });

  it("a function given another function's token is refused with 403 and says why", async () => {
    const wrongToken = await system.kubeconfigFor("inject-crd");
    const fn = await startFunction("issue-serving-cert", {
      kubeconfig: wrongToken,
      env: { LOG_LEVEL: "error" },
    });
    try {
      const svc = {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "web", namespace: "shop" },
      } as ObjectLike;
      const res = await deliver(fn.url, apiServerEvent(svc, "update"), await sourceToken(system.kc, fn.name));
      assert.equal(res.status, 403);
      const err = res.json.error as { kind: string; message: string };
      assert.equal(err.kind, "forbidden");
      assert.match(
        err.message,
        /system:serviceaccount:service-ca:inject-crd.*cannot get resource "services"/,
      );
    } finally {
      await fn.process.stop();
    }
  });
});
