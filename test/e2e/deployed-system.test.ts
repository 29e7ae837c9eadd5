// The README's session on the system as deployed: the image in pods on a real node, installed with
// `kubectl apply -k infra/overlays/eventing-only/`, wired by Knative Eventing's own controller, reached through
// Services, cluster DNS and kube-proxy. Nothing calls a handler directly: every event comes from Knative's
// adapters, every call to a function goes through its Service.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import {
  startDeployedSystem,
  SYSTEM_IMAGE,
  SYSTEM_NAMESPACE,
  type DeployedSystem,
} from "../../dev/cluster/deployed-system.ts";
import { NODE_IN_IMAGE } from "../../dev/image/service-image.ts";
import { waitFor } from "../../dev/processes.ts";
import { opensslVerifies } from "../support/tls.ts";
import { rotatorRules, tokenWithRules } from "../../dev/tokens.ts";
import { scrape } from "../../dev/metrics.ts";
import { buildPlugin } from "../../scripts/build-plugin.ts";

const run = promisify(execFile);

const SECRET_NAME = "service.beta.openshift.io/serving-cert-secret-name";
const INJECT = "service.beta.openshift.io/inject-cabundle";
const NS = "shop";

let system: DeployedSystem;
let core: k8s.CoreV1Api;
const kubectl = (...args: string[]) => system.kubectl(...args);

const bundle = async () =>
  (await core.readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: "signing-cabundle" })).data![
    "ca-bundle.crt"
  ]!;
const certificatesIn = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
const tlsSecret = (name: string, ns = NS) =>
  waitFor(
    `Secret ${ns}/${name}`,
    async () => {
      const s = await core.readNamespacedSecret({ namespace: ns, name }).catch(() => undefined);
      return s?.data?.["tls.crt"] ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  );
const pem = (s: k8s.V1Secret, key = "tls.crt") => Buffer.from(s.data![key]!, "base64").toString();
const annotatedService = (name: string, secret: string, ns = NS) =>
  core.createNamespacedService({
    namespace: ns,
    body: {
      metadata: { name, annotations: { [SECRET_NAME]: secret } },
      spec: { selector: { app: name }, ports: [{ port: 443, targetPort: 8443 }] },
    },
  });

before(async () => {
  system = await startDeployedSystem({ log: (l) => console.log(`[deployed] ${l}`) });
  core = system.kc.makeApiClient(k8s.CoreV1Api);
  await kubectl("create", "namespace", NS);
  // A new namespace rolls every all-namespace adapter (Knative lists the namespaces in its configuration).
  await system.adaptersSettled();
});
after(() => system?.stop());

describe("the system as deployed on a one-node cluster", () => {
  it("runs every function as a pod of the image, non-root with a read-only root, and every adapter as Knative rendered it", async () => {
    const pods = await core.listNamespacedPod({ namespace: SYSTEM_NAMESPACE });
    const functionPods = pods.items.filter(
      (p) => p.metadata?.labels?.["app.kubernetes.io/component"] === "function",
    );
    assert.equal(functionPods.length, system.functions.size);
    for (const p of functionPods) {
      assert.equal(p.status?.phase, "Running", p.metadata?.name);
      const c = p.spec!.containers[0]!;
      assert.equal(c.image, SYSTEM_IMAGE);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext?.runAsUser, 65532);
      // Started from its code cache: its container runs Node with the flags the build wrote the cache under.
      const log = await kubectl("-n", SYSTEM_NAMESPACE, "logs", p.metadata!.name!);
      assert.doesNotMatch(log, /code cache rejected/, p.metadata?.name);
    }
    // Knative's controller made one adapter Deployment per ApiServerSource, and runs the shared ping adapter.
    const sources = JSON.parse(
      await kubectl("-n", SYSTEM_NAMESPACE, "get", "apiserversources", "-o", "json"),
    );
    for (const s of sources.items) {
      assert.match(
        s.status.sinkUri,
        new RegExp(`^http://${s.spec.sink.ref.name}\\.${SYSTEM_NAMESPACE}\\.svc\\.cluster\\.local`),
      );
    }
    const deployments = JSON.parse(await kubectl("-n", SYSTEM_NAMESPACE, "get", "deployments", "-o", "json"));
    const adapters = deployments.items.filter((d: { metadata: { name: string } }) =>
      d.metadata.name.startsWith("apiserversource-"),
    );
    assert.equal(adapters.length, sources.items.length);
    for (const d of adapters) assert.equal(d.status.availableReplicas, 1, d.metadata.name);
    const ping = JSON.parse(
      await kubectl("-n", "knative-eventing", "get", "deployment", "pingsource-mt-adapter", "-o", "json"),
    );
    assert.equal(ping.status.availableReplicas, 1);
  });

  it("authenticated delivery: Knative's OIDC identities and audiences; a forged event is refused; NetworkPolicies select what Knative rendered", async () => {
    // authentication-oidc is on: each adapter sends with its source's own OIDC ServiceAccount and the sink's audience.
    const deployments = JSON.parse(await kubectl("-n", SYSTEM_NAMESPACE, "get", "deployments", "-o", "json"));
    const sources = JSON.parse(
      await kubectl("-n", SYSTEM_NAMESPACE, "get", "apiserversources", "-o", "json"),
    );
    for (const src of sources.items) {
      const d = deployments.items.find(
        (d: { spec: { template: { metadata: { labels: Record<string, string> } } } }) =>
          d.spec.template.metadata.labels["eventing.knative.dev/sourceName"] === src.metadata.name,
      );
      assert.ok(d, `an adapter labelled eventing.knative.dev/sourceName=${src.metadata.name}`);
      const env = Object.fromEntries(
        d.spec.template.spec.containers[0].env.map((e: { name: string; value?: string }) => [
          e.name,
          e.value,
        ]),
      );
      assert.equal(env.K_AUDIENCE, src.spec.sink.audience, src.metadata.name);
      assert.equal(env.K_OIDC_SERVICE_ACCOUNT, src.status.auth.serviceAccountName, src.metadata.name);
    }
    // From the host through the Service (a position any pod has too), with no token and with a stranger's token.
    const url = system.functions.get("expiry-scan")!;
    const ping = {
      "ce-specversion": "1.0",
      "ce-id": "forged",
      "ce-source": "/apis/v1/namespaces/service-ca/pingsources/expiry-scan-hourly",
      "ce-type": "dev.knative.sources.ping",
      "content-type": "application/json",
    };
    const noToken = await fetch(url, { method: "POST", headers: ping, body: "{}" });
    assert.equal(noToken.status, 401);
    assert.deepEqual(await noToken.json(), {
      error: { kind: "unauthenticated", message: "unauthenticated" },
    });
    await kubectl("create", "namespace", "stranger");
    await kubectl("-n", "stranger", "create", "serviceaccount", "admin");
    const stranger = (
      await kubectl(
        "-n",
        "stranger",
        "create",
        "token",
        "admin",
        "--audience=service-ca-functions.dev/expiry-scan",
      )
    ).trim();
    const strange = await fetch(url, {
      method: "POST",
      headers: { ...ping, authorization: `Bearer ${stranger}` },
      body: "{}",
    });
    assert.equal(strange.status, 403);
    assert.deepEqual(await strange.json(), { error: { kind: "forbidden", message: "forbidden" } });
    // The NetworkPolicies' selectors match the pods Knative rendered and the function pods (nothing enforces them
    // on this node: the CNI bridge plugin has no NetworkPolicy support).
    const policies = JSON.parse(
      await kubectl("-n", SYSTEM_NAMESPACE, "get", "networkpolicies", "-o", "json"),
    );
    assert.equal(policies.items.length, system.functions.size);
    const pods = [
      ...JSON.parse(await kubectl("-n", SYSTEM_NAMESPACE, "get", "pods", "-o", "json")).items,
      ...JSON.parse(await kubectl("-n", "knative-eventing", "get", "pods", "-o", "json")).items,
    ] as Array<{ metadata: { name: string; namespace: string; labels?: Record<string, string> } }>;
    const matches = (
      sel: {
        matchLabels?: Record<string, string>;
        matchExpressions?: Array<{ key: string; values: string[] }>;
      },
      labels: Record<string, string> = {},
    ) =>
      Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
      (sel.matchExpressions ?? []).every((e) => e.values.includes(labels[e.key] ?? ""));
    for (const np of policies.items) {
      const selected = pods.filter(
        (p) => p.metadata.namespace === SYSTEM_NAMESPACE && matches(np.spec.podSelector, p.metadata.labels),
      );
      assert.equal(selected.length, 1, `${np.metadata.name} selects its function's pod`);
      for (const rule of np.spec.ingress) {
        const peer = rule.from[0];
        if (peer.namespaceSelector?.matchLabels?.["service-ca-functions.dev/metrics-scraper"]) continue;
        if (peer.podSelector?.matchLabels?.["service-ca-functions.dev/rotate-ca-client"]) continue;
        const ns = peer.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"] ?? SYSTEM_NAMESPACE;
        const admitted = pods.filter(
          (p) => p.metadata.namespace === ns && matches(peer.podSelector, p.metadata.labels),
        );
        const wanted = peer.podSelector.matchExpressions?.[0]?.values.length ?? 1;
        assert.ok(
          admitted.length >= wanted,
          `${np.metadata.name}: ${JSON.stringify(peer)} admits ${admitted.length} running adapter pods`,
        );
      }
    }
  });

  it("kubectl annotate svc → a TLS Secret that verifies against the published bundle", async () => {
    await kubectl("-n", NS, "create", "service", "clusterip", "web", "--tcp=443:8443");
    const started = performance.now();
    await kubectl("-n", NS, "annotate", "service", "web", `${SECRET_NAME}=web-tls`);
    const secret = await tlsSecret("web-tls");
    console.log(
      `deployed: kubectl annotate → Secret readable in ${(performance.now() - started).toFixed(0)} ms`,
    );
    assert.equal(secret.type, "kubernetes.io/tls");
    assert.ok(await opensslVerifies(await bundle(), pem(secret)));
  });

  it("annotated ConfigMap → the CA bundle injected", async () => {
    await kubectl("-n", NS, "create", "configmap", "trust");
    await kubectl("-n", NS, "annotate", "configmap", "trust", `${INJECT}=true`);
    const injected = await waitFor(
      "service-ca.crt in the ConfigMap",
      async () =>
        (await core.readNamespacedConfigMap({ namespace: NS, name: "trust" })).data?.["service-ca.crt"],
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    assert.equal(injected, await bundle());
  });

  it("a webhook served by a pod from its serving Secret is called by the kube-apiserver through the injected caBundle, before and after a forced rotation", async () => {
    await annotatedService("hook", "hook-tls");
    await tlsSecret("hook-tls");
    await core.createNamespacedPod({ namespace: NS, body: webhookPod() });
    await kubectl("-n", NS, "wait", "--for=condition=Ready", "--timeout=120s", "pod/hook");
    const admission = system.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: "shop-deny-labelled", annotations: { [INJECT]: "true" } },
        webhooks: [
          {
            name: "deny.shop.example",
            admissionReviewVersions: ["v1"],
            sideEffects: "None",
            failurePolicy: "Fail",
            timeoutSeconds: 5,
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": NS } },
            objectSelector: { matchLabels: { "webhook-test": "yes" } },
            rules: [
              { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["configmaps"] },
            ],
            clientConfig: { service: { namespace: NS, name: "hook", port: 443, path: "/validate" } },
          },
        ],
      },
    });
    const denied = async (name: string) =>
      waitFor(
        `the webhook to deny ${name}`,
        async () => {
          try {
            await core.createNamespacedConfigMap({
              namespace: NS,
              body: { metadata: { name, labels: { "webhook-test": "yes" } } },
            });
            throw new Error(`${name} was admitted without the webhook`);
          } catch (err) {
            const msg = String((err as { body?: unknown }).body ?? err);
            if (/denied by the shop webhook/.test(msg)) return msg;
            if (/admitted without/.test(msg)) throw err;
            return undefined; // TLS not trusted yet, or the webhook not reachable yet: keep trying
          }
        },
        { timeoutMs: 90_000, intervalMs: 500 },
      );
    await denied("before-rotation");

    // A forced rotation through rotate-ca's Service, as an admin ServiceAccount with the one right it needs.
    const token = await tokenWithRules(system.kc, SYSTEM_NAMESPACE, "ca-admin", rotatorRules());
    const before = await bundle();
    const res = await fetch(`${system.functions.get("rotate-ca")}/rotate`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ reason: "deployed end-to-end test" }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const after = await waitFor("the bundle with both CAs", async () => {
      const b = await bundle();
      return certificatesIn(b) === 2 && b !== before ? b : undefined;
    });
    // The webhook's caBundle follows, the pod still serves its old certificate: the API server keeps calling it.
    await waitFor(
      "the rotated bundle in the webhook configuration",
      async () => {
        const w = await admission.readValidatingWebhookConfiguration({ name: "shop-deny-labelled" });
        return Buffer.from(w.webhooks![0]!.clientConfig.caBundle!, "base64").toString() === after
          ? true
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    await denied("after-rotation");
    // expiry-scan re-issues every serving certificate from the new CA on the bundle change.
    const reissued = await waitFor(
      "web-tls re-issued after the rotation",
      async () => {
        const s = await core.readNamespacedSecret({ namespace: NS, name: "web-tls" });
        return certificatesIn(pem(s)) > 1 && (await opensslVerifies(after, pem(s))) ? s : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    assert.ok(reissued);
  });

  it("kubectl service-ca rotate reaches rotate-ca through the API server's Service proxy with the user's own token", async () => {
    const work = await mkdtemp(join(tmpdir(), "service-ca-plugin-"));
    try {
      const plugin = await buildPlugin(join(work, "kubectl-service_ca"));
      const token = await tokenWithRules(system.kc, SYSTEM_NAMESPACE, "ca-operator", [
        ...rotatorRules(),
        {
          apiGroups: [""],
          resources: ["services/proxy"],
          resourceNames: ["rotate-ca", "http:rotate-ca:80"],
          verbs: ["get", "create"],
        },
      ]);
      const kc = new k8s.KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "node", server: system.cluster.server, caFile: system.cluster.caFile }],
        users: [{ name: "ca-operator", token }],
        contexts: [{ name: "node", cluster: "node", user: "ca-operator" }],
        currentContext: "node",
      });
      const kubeconfig = join(work, "kubeconfig");
      await writeFile(kubeconfig, kc.exportConfig(), { mode: 0o600 });
      const before = await bundle();
      const { stdout } = await run(
        process.execPath,
        [plugin, "rotate", "--dry-run", "--reason", "proxy drill", "-o", "json"],
        {
          env: { ...process.env, KUBECONFIG: kubeconfig },
        },
      );
      const answer = JSON.parse(stdout) as { outcome: string; user: string };
      assert.equal(answer.outcome, "dry-run");
      assert.equal(answer.user, `system:serviceaccount:${SYSTEM_NAMESPACE}:ca-operator`);
      assert.equal(await bundle(), before, "a dry run changes nothing");
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it("expiry-scan runs when its PingSource fires, through Knative's ping adapter", async () => {
    const url = system.functions.get("expiry-scan")!;
    const pings = async () =>
      [...(await scrape(url)).entries()]
        .filter(([k]) => k.startsWith("service_ca_requests_total") && k.includes('status="200"'))
        .reduce((n, [, v]) => n + v, 0);
    const seen = await pings();
    await kubectl(
      "-n",
      SYSTEM_NAMESPACE,
      "patch",
      "pingsource",
      "expiry-scan-hourly",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { schedule: "* * * * *" } }),
    );
    await waitFor("a ping to reach expiry-scan", async () => ((await pings()) > seen ? true : undefined), {
      timeoutMs: 150_000,
      intervalMs: 1000,
    });
  });

  it("issue-serving-cert killed mid-burst: the kubelet restarts it and every Service gets its Secret", async () => {
    await kubectl("create", "namespace", "burst");
    const n = 20;
    for (let i = 0; i < n; i++) {
      await annotatedService(`s${i}`, `s${i}-tls`, "burst");
      if (i === 5) killContainerProcess("issue-serving-cert");
    }
    const pod = await waitFor(
      "issue-serving-cert restarted by the kubelet",
      async () => {
        const pods = await core.listNamespacedPod({
          namespace: SYSTEM_NAMESPACE,
          labelSelector: "app.kubernetes.io/name=issue-serving-cert",
        });
        const status = pods.items[0]?.status?.containerStatuses?.[0];
        return status && status.restartCount > 0 && status.ready ? status : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    assert.ok(pod.restartCount >= 1);
    const b = await bundle();
    // Events delivered while it was down are lost to it; the scan (pinged every minute now) repairs them.
    for (let i = 0; i < n; i++) {
      const s = await waitFor(
        `burst/s${i}-tls`,
        async () => {
          const sec = await core
            .readNamespacedSecret({ namespace: "burst", name: `s${i}-tls` })
            .catch(() => undefined);
          return sec?.data?.["tls.crt"] ? sec : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 500 },
      );
      assert.ok(await opensslVerifies(b, pem(s)), `s${i}-tls verifies`);
    }
  });
});

/** An HTTPS admission webhook in a pod of the system's own image, serving the Secret issued to its Service. */
function webhookPod(): k8s.V1Pod {
  const server = `
    const https = require("node:https"), fs = require("node:fs");
    https.createServer({ cert: fs.readFileSync("/tls/tls.crt"), key: fs.readFileSync("/tls/tls.key") }, (req, res) => {
      let body = ""; req.on("data", (d) => (body += d)); req.on("end", () => {
        const review = JSON.parse(body);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview",
          response: { uid: review.request.uid, allowed: false, status: { message: "denied by the shop webhook" } } }));
      });
    }).listen(8443);
    process.on("SIGTERM", () => process.exit(0));`;
  return {
    metadata: { name: "hook", labels: { app: "hook" } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: "hook",
          image: SYSTEM_IMAGE,
          command: [NODE_IN_IMAGE, "-e", server],
          ports: [{ containerPort: 8443 }],
          readinessProbe: { tcpSocket: { port: 8443 } },
          volumeMounts: [{ name: "tls", mountPath: "/tls", readOnly: true }],
          securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
        },
      ],
      volumes: [{ name: "tls", secret: { secretName: "hook-tls" } }],
    },
  };
}

/** SIGKILL the main process of a function's container, found as the kubelet's node would: by its command line. */
function killContainerProcess(functionName: string) {
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let cmdline: string[];
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (cmdline[0] === NODE_IN_IMAGE && cmdline.includes(functionName)) {
      process.kill(Number(pid), "SIGKILL");
      return;
    }
  }
  throw new Error(`no running container process of ${functionName}`);
}
