// Knative Serving's admission webhook on the one-node cluster, without the rest of Serving: what its own
// config/core/ gives it (namespace, ServiceAccount and roles, the CRDs, the ConfigMaps it watches and validates,
// its Deployment and Service, its webhook configurations), installed the way `ko apply -f config/core/` would
// with `ko://knative.dev/serving/cmd/webhook` replaced by an image of the binary build-binaries.sh --node makes.
// The controller, activator, autoscaler and queue-proxy are left out: admission needs none of them, and Serving's
// networking layers (Kourier, Istio, Contour: all Envoy) cannot run here.
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import yaml from "js-yaml";
import { goModuleDir, KNATIVE_SERVING } from "../controlplane/go-modules.ts";
import { waitFor } from "../processes.ts";
import { binaryImage, type NodeImage } from "./images.ts";
import type { NodeCluster } from "./node-cluster.ts";
import { stepTimer } from "../step-timer.ts";

const run = promisify(execFile);
const servingGoDir = join(import.meta.dirname, "../controlplane/go/knative-serving");

export const SERVING_NAMESPACE = "knative-serving";
export const SERVING_VALIDATION_WEBHOOK = "validation.webhook.serving.knative.dev";
export const SERVING_DEFAULTING_WEBHOOK = "webhook.serving.knative.dev";

/**
 * What of config/core/ the webhook needs, relative to it. Left out: the controller's, activator's and
 * autoscaler's Deployments, the HPAs, the activator's networking Certificate (300-knativecertificate.yaml, a
 * knative.dev/networking resource) and the queue-proxy's caching Image (999-cache.yaml, knative.dev/caching).
 */
const needed = (file: string) =>
  file === "100-namespace.yaml" ||
  file === "200-serviceaccount.yaml" ||
  file.startsWith("200-roles/") ||
  file.startsWith("300-resources/") ||
  file.startsWith("configmaps/") ||
  file === "deployments/webhook.yaml" ||
  file.startsWith("webhooks/");

/** Named where config/core/ names a program this repository does not build (config-deployment's queue-proxy). */
const notBuilt = (what: string) => `localhost/service-ca-functions/not-built:${what}`;

/** The webhook, ko-style (/ko-app/serving-webhook), run as the nonroot user of ko's default base image. */
export function servingWebhookImage(binDir: string): Promise<NodeImage> {
  return binaryImage("serving-webhook", join(binDir, "serving-webhook"), {
    user: "65532:65532",
    env: { KO_DATA_PATH: "/var/run/ko" },
  });
}

async function yamlFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".yaml"))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** The webhook's part of config/core/ as one manifest, its ko:// image resolved to `image`. */
export async function servingWebhookManifest(image: NodeImage, outDir: string): Promise<string> {
  const core = join(await goModuleDir(KNATIVE_SERVING, servingGoDir), "config/core");
  const docs: string[] = [];
  for (const file of (await yamlFiles(core)).filter(needed)) {
    const text = (await readFile(join(core, file), "utf8"))
      .replaceAll("ko://knative.dev/serving/cmd/webhook", image.name)
      .replace(/ko:\/\/knative\.dev\/serving\/cmd\/([a-z_-]+)/g, (_, program: string) => notBuilt(program));
    for (const doc of yaml.loadAll(text)) if (doc) docs.push(yaml.dump(doc, { noRefs: true, lineWidth: -1 }));
  }
  const out = join(outDir, "knative-serving-webhook.yaml");
  await writeFile(out, docs.join("---\n"));
  return out;
}

export interface ServingWebhook {
  image: NodeImage;
  /** seconds per step: image built and imported, applied, Deployment Available, callable by the API server */
  timings: Array<[string, number]>;
}

/** A Knative Service that Serving's webhook admits; the probe of "callable" (a server-side dry run). */
const probeService = {
  apiVersion: "serving.knative.dev/v1",
  kind: "Service",
  metadata: { name: "serving-webhook-probe", namespace: "default" },
  spec: { template: { spec: { containers: [{ image: "localhost/service-ca-functions/not-built:probe" }] } } },
};

/**
 * Installs Serving's webhook on `cluster` and resolves once the API server calls it: a dry-run create of a
 * Knative Service comes back defaulted by it (its creator annotation, which only the webhook sets).
 */
export async function installServingWebhook(
  cluster: NodeCluster,
  opts: { log?: (line: string) => void } = {},
): Promise<ServingWebhook> {
  const log = opts.log ?? (() => {});
  const { timings, step } = stepTimer(log);
  const kubectl = async (args: string[], input?: string) => {
    const child = run(cluster.kubectl, ["--kubeconfig", cluster.kubeconfig, ...args], {
      maxBuffer: 64 << 20,
    });
    if (input !== undefined) child.child.stdin!.end(input);
    return (await child).stdout;
  };

  const work = join(cluster.dir, "knative-serving-webhook");
  await mkdir(work, { recursive: true });
  const image = await servingWebhookImage(cluster.binDir);
  await cluster.importImage(image.archive);
  step("Serving webhook image built and imported");

  await kubectl(["apply", "--server-side", "-f", await servingWebhookManifest(image, work)]);
  step("Serving webhook's config/core applied");
  await kubectl([
    "-n",
    SERVING_NAMESPACE,
    "wait",
    "--for=condition=Available",
    "--timeout=300s",
    "deployment/webhook",
  ]);
  step("Serving webhook Available");

  // It makes its serving certificate, fills the caBundle and rules of its webhook configurations, and is
  // reachable through its Service's endpoints a moment after Available: until then the dry run fails
  // ("failed calling webhook", x509, no endpoints) or comes back without its defaults.
  await waitFor(
    "Knative Serving's webhook called by the API server",
    async () => {
      const out = JSON.parse(
        await kubectl(["create", "--dry-run=server", "-o", "json", "-f", "-"], JSON.stringify(probeService)),
      );
      return out.metadata?.annotations?.["serving.knative.dev/creator"] ? true : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  step("Serving webhook callable");
  return { image, timings };
}
