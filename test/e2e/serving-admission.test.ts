// The default manifests (infra/, `kubectl apply -k infra/`) admitted by Knative Serving's own webhook on a real
// node: Serving's webhook runs as a pod from its config/core/ (dev/cluster/knative-serving-webhook.ts), the API
// server calls it for every Knative Service, and a Service its validation refuses is refused by it, so the
// admissions are the webhook's and not only the CRD schema's. Eventing's sources are checked against
// Eventing's CRD schemas (dev/local-system/knative-crds.ts), not by Eventing's webhook.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import yaml from "js-yaml";
import {
  installServingWebhook,
  SERVING_DEFAULTING_WEBHOOK,
  SERVING_NAMESPACE,
  SERVING_VALIDATION_WEBHOOK,
  type ServingWebhook,
} from "../../dev/cluster/knative-serving-webhook.ts";
import { startNodeCluster, type NodeCluster } from "../../dev/cluster/node-cluster.ts";
import { knativeCrdManifest } from "../../dev/local-system/knative-crds.ts";

const run = promisify(execFile);
const infra = join(import.meta.dirname, "../../infra");
const NS = "service-ca";

let cluster: NodeCluster;
let webhook: ServingWebhook;
const kubectl = async (args: string[], input?: string) => {
  const child = run(cluster.kubectl, ["--kubeconfig", cluster.kubeconfig, ...args], { maxBuffer: 64 << 20 });
  if (input !== undefined) child.child.stdin!.end(input);
  return (await child).stdout;
};
/** kubectl's stderr when it fails, so a refusal can be read; throws if it succeeds. */
const refusal = async (args: string[], input?: string) => {
  try {
    await kubectl(args, input);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`kubectl ${args.join(" ")} succeeded`);
};

/** The API server's own count of its calls to one admission webhook, by whether the webhook refused. */
async function webhookCalls(name: string): Promise<{ admitted: number; rejected: number }> {
  const text = await kubectl(["get", "--raw", "/metrics"]);
  const calls = { admitted: 0, rejected: 0 };
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_admission_webhook_request_total{") || !line.includes(`name="${name}"`))
      continue;
    const n = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.includes('rejected="true"')) calls.rejected += n;
    else calls.admitted += n;
  }
  return calls;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are read generically */
let rendered: any[];
const isKnative = (d: any) => /\.knative\.dev\//.test(d.apiVersion);
const knativeServices = () => rendered.filter((d) => d.apiVersion === "serving.knative.dev/v1");

const refused = (spec: any) =>
  JSON.stringify({
    apiVersion: "serving.knative.dev/v1",
    kind: "Service",
    metadata: { name: "refused", namespace: NS },
    spec: { template: { spec: spec } },
  });

before(async () => {
  const log = (l: string) => console.log(`[serving-admission] ${l}`);
  cluster = await startNodeCluster({ log });
  try {
    webhook = await installServingWebhook(cluster, { log });
    // infra/'s sources need Eventing's CRDs (ApiServerSource, PingSource); the Service CRD is Serving's own.
    await kubectl([
      "apply",
      "--server-side",
      "--force-conflicts",
      "-f",
      await knativeCrdManifest(cluster.dir),
    ]);
    await kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    rendered = yaml.loadAll(await kubectl(["kustomize", infra])) as any[];
  } catch (err) {
    await cluster.stop();
    throw err;
  }
});
after(() => cluster?.stop());

describe("infra/ admitted by Knative Serving's webhook", () => {
  it("runs Serving's webhook from its config/core/ and registers it with the API server", async () => {
    const pods = JSON.parse(await kubectl(["-n", SERVING_NAMESPACE, "get", "pods", "-o", "json"]));
    assert.deepEqual(
      pods.items.map((p: any) => [p.metadata.labels.app, p.status.phase, p.spec.containers[0].image]),
      [["webhook", "Running", webhook.image.name]],
      "only the webhook of Knative Serving runs",
    );
    for (const [kind, name] of [
      ["validatingwebhookconfiguration", SERVING_VALIDATION_WEBHOOK],
      ["mutatingwebhookconfiguration", SERVING_DEFAULTING_WEBHOOK],
    ] as const) {
      const config = JSON.parse(await kubectl(["get", kind, name, "-o", "json"]));
      const w = config.webhooks[0];
      assert.deepEqual(w.clientConfig.service, {
        ...w.clientConfig.service,
        name: "webhook",
        namespace: SERVING_NAMESPACE,
      });
      assert.ok(w.clientConfig.caBundle, `${name} has the webhook's caBundle`);
      assert.equal(w.failurePolicy, "Fail");
      assert.ok(
        w.rules.some(
          (r: any) => r.apiGroups.includes("serving.knative.dev") && r.resources.includes("services"),
        ),
        `${name} covers Knative Services`,
      );
    }
    console.log(
      `[serving-admission] ${webhook.timings.map(([s, t]) => `${s}: ${t.toFixed(1)} s`).join("; ")}`,
    );
  });

  it("admits `kubectl apply -k infra/ --dry-run=server`: every Knative Service through both of its webhooks", async () => {
    assert.equal(knativeServices().length, 9);
    // A dry run persists nothing, so what infra/ itself makes for its Services (the namespace, and the
    // ServiceAccounts Serving's webhook dry-runs each Service's pod with) is created first; every Knative
    // resource is then only dry-run.
    const prerequisites = rendered.filter((d) => !isKnative(d));
    await kubectl(["apply", "-f", "-"], prerequisites.map((d) => yaml.dump(d)).join("---\n"));

    const validating = await webhookCalls(SERVING_VALIDATION_WEBHOOK);
    const defaulting = await webhookCalls(SERVING_DEFAULTING_WEBHOOK);
    const t0 = performance.now();
    const out = JSON.parse(await kubectl(["apply", "-k", infra, "--dry-run=server", "-o", "json"]));
    console.log(`[serving-admission] infra/ dry run in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const items: any[] = out.kind === "List" ? out.items : [out];
    assert.equal(items.length, rendered.length, "every object of infra/ admitted");

    const services = items.filter((d) => d.apiVersion === "serving.knative.dev/v1");
    assert.deepEqual(
      services.map((s) => s.metadata.name).sort(),
      knativeServices()
        .map((s) => s.metadata.name)
        .sort(),
    );
    for (const s of services) {
      // Only Serving's defaulting webhook sets these; the CRD schema defaults none of them.
      assert.ok(s.metadata.annotations?.["serving.knative.dev/creator"], s.metadata.name);
      assert.equal(s.spec.template.spec.containers[0].name, "user-container", s.metadata.name);
      assert.deepEqual(s.spec.traffic, [{ latestRevision: true, percent: 100 }], s.metadata.name);
    }
    for (const kind of ["ApiServerSource", "PingSource"])
      assert.ok(
        items.some((d) => d.kind === kind),
        `${kind} admitted`,
      );

    // The API server called the validating webhook once per Knative Service, and it refused none.
    const validatingAfter = await webhookCalls(SERVING_VALIDATION_WEBHOOK);
    const defaultingAfter = await webhookCalls(SERVING_DEFAULTING_WEBHOOK);
    assert.ok(
      validatingAfter.admitted - validating.admitted >= services.length,
      `validating: ${JSON.stringify(validating)} → ${JSON.stringify(validatingAfter)}`,
    );
    assert.equal(validatingAfter.rejected, validating.rejected);
    assert.ok(defaultingAfter.admitted - defaulting.admitted >= services.length);
  });

  it("refuses a Knative Service its validation rejects, with the webhook's name in the error", async () => {
    const before = await webhookCalls(SERVING_VALIDATION_WEBHOOK);
    // The CRD schema allows any timeoutSeconds; Serving's webhook caps it at config-defaults'
    // max-revision-timeout-seconds (600).
    const tooLong = await refusal(
      ["apply", "--dry-run=server", "-f", "-"],
      refused({ timeoutSeconds: 3600, containers: [{ image: "service-ca-functions" }] }),
    );
    assert.match(tooLong, new RegExp(`admission webhook "${SERVING_VALIDATION_WEBHOOK}" denied the request`));
    assert.match(tooLong, /3600.*spec\.template\.spec\.timeoutSeconds/);
    // Its pod dry run: a ServiceAccount that does not exist is refused by the API server's own admission, which
    // Serving's webhook reports as its refusal.
    const noAccount = await refusal(
      ["apply", "--dry-run=server", "-f", "-"],
      refused({ serviceAccountName: "nobody", containers: [{ image: "service-ca-functions" }] }),
    );
    assert.match(
      noAccount,
      new RegExp(`admission webhook "${SERVING_VALIDATION_WEBHOOK}" denied the request`),
    );
    assert.match(noAccount, /dry run failed.*nobody/);
    const after = await webhookCalls(SERVING_VALIDATION_WEBHOOK);
    assert.equal(after.rejected - before.rejected, 2);
  });

  it("admits `kubectl apply -k infra/` itself", async () => {
    await kubectl(["apply", "-k", infra]);
    const ksvcs = JSON.parse(await kubectl(["-n", NS, "get", "services.serving.knative.dev", "-o", "json"]));
    assert.equal(ksvcs.items.length, 9);
    for (const s of ksvcs.items) assert.ok(s.metadata.annotations["serving.knative.dev/creator"]);
  });
});
