// The system as users install it, on the one-node cluster: the project's image and Knative Eventing's images
// imported into containerd, Knative Eventing from its own config/, then `kubectl apply -k
// infra/overlays/eventing-only/`. Knative's controller renders and runs the sources' adapters; the functions
// run as pods with in-cluster credentials behind Services and cluster DNS. Nothing here configures an adapter.
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { functionNames } from "../../shared/host/functions.ts";
import { waitFor } from "../processes.ts";
import { buildFunctionsImage } from "../image/service-image.ts";
import { functionBundles } from "../local-system/bundles.ts";
import { selectsAllNamespaces, type ApiServerSource } from "../local-system/local-system.ts";
import { eventingImages, eventingManifest, KNATIVE_NAMESPACE } from "./knative-eventing.ts";
import { knativeOidcServiceAccount } from "../../shared/runtime/event-senders.ts";
import { startNodeCluster, type NodeCluster } from "./node-cluster.ts";
import { stepTimer } from "../step-timer.ts";

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, "../..");
export { SYSTEM_NAMESPACE } from "../../shared/names.ts";
import { SYSTEM_NAMESPACE } from "../../shared/names.ts";
/** The image infra/ names by tag; the node has it imported, so the default pull policy never pulls. */
export const SYSTEM_IMAGE = "ghcr.io/service-ca-functions/functions:0.1.0";

export interface DeployedSystem {
  cluster: NodeCluster;
  kc: k8s.KubeConfig;
  /** function name → http://<ClusterIP> of its Service (reachable from this host through kube-proxy) */
  functions: Map<string, string>;
  kubectl(...args: string[]): Promise<string>;
  /**
   * Resolves once Knative has rendered every adapter for the namespaces that exist now and each adapter's rollout
   * is complete. A source that watches all namespaces carries their names in its adapter's configuration, so
   * every namespace created or deleted rolls its adapter Deployment (one old and one new pod, briefly).
   */
  adaptersSettled(): Promise<void>;
  /** seconds per step of the bring-up, for the benchmark and the README */
  timings: Array<[string, number]>;
  stop(): Promise<void>;
}

export async function startDeployedSystem(
  opts: { log?: (line: string) => void } = {},
): Promise<DeployedSystem> {
  const log = opts.log ?? (() => {});
  const { timings, step } = stepTimer(log);
  const cluster = await startNodeCluster({ log });
  step("one-node cluster up");
  const kubectl = async (...args: string[]) =>
    (await run(cluster.kubectl, ["--kubeconfig", cluster.kubeconfig, ...args], { maxBuffer: 64 << 20 }))
      .stdout;
  try {
    const work = join(cluster.dir, "deployed-system");
    await mkdir(work, { recursive: true });
    // The bundles this run already has (cached by their sources), not a second build of the same sources.
    const image = await buildFunctionsImage({
      bundles: await functionBundles(),
      functions: functionNames(),
      outDir: join(work, "image"),
      log,
    });
    if (image.name !== SYSTEM_IMAGE)
      throw new Error(`the image is ${image.name}; infra/ runs ${SYSTEM_IMAGE}`);
    await cluster.importImage(image.archive);
    const eventing = await eventingImages(cluster.binDir);
    for (const img of eventing.all) await cluster.importImage(img.archive);
    step("images built and imported");

    await kubectl("apply", "--server-side", "-f", await eventingManifest(eventing, work));
    await kubectl(
      "-n",
      KNATIVE_NAMESPACE,
      "wait",
      "--for=condition=Available",
      "--timeout=300s",
      "deployment/eventing-controller",
      "deployment/eventing-webhook",
    );
    step("Knative Eventing controller and webhook Available");

    // The webhook's certificate and endpoints come a moment after its Deployment is Available: retry while the
    // API server cannot call it yet.
    await waitFor(
      "infra/overlays/eventing-only applied",
      async () => {
        try {
          return await kubectl("apply", "-k", join(repoRoot, "infra/overlays/eventing-only"));
        } catch (err) {
          if (/failed calling webhook|connection refused|no endpoints/i.test(String(err))) return undefined;
          throw err;
        }
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    await kubectl(
      "-n",
      SYSTEM_NAMESPACE,
      "wait",
      "--for=condition=Available",
      "--timeout=300s",
      ...functionNames().map((n) => `deployment/${n}`),
    );
    step("functions Available");
    for (const kind of ["apiserversources", "pingsources"])
      await kubectl("-n", SYSTEM_NAMESPACE, "wait", "--for=condition=Ready", "--timeout=300s", kind, "--all");
    await adaptersSettled(kubectl);
    step("sources Ready (adapters rendered by Knative's controller, rolled out)");
    await checkOidcIdentities(kubectl);

    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const functions = new Map<string, string>();
    for (const name of functionNames()) {
      const svc = await core.readNamespacedService({ namespace: SYSTEM_NAMESPACE, name });
      functions.set(name, `http://${svc.spec!.clusterIP}`);
    }
    const stop = async () => {
      await cluster.stop();
    };
    return {
      cluster,
      kc,
      functions,
      kubectl,
      adaptersSettled: () => adaptersSettled(kubectl),
      timings,
      stop,
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

interface SourceState {
  metadata: { name: string; generation: number };
  spec: Pick<ApiServerSource["spec"], "namespaceSelector">;
  status?: { observedGeneration?: number; namespaces?: string[] };
}

export interface AdapterDeployment {
  name: string;
  generation: number;
  /** the ApiServerSource that owns it */
  source: string;
}

/** The Deployments Knative's controller rendered for the ApiServerSources in the system's namespace. */
export async function adapterDeployments(
  kubectl: (...args: string[]) => Promise<string>,
): Promise<AdapterDeployment[]> {
  const { items } = JSON.parse(await kubectl("-n", SYSTEM_NAMESPACE, "get", "deployments", "-o", "json")) as {
    items: Array<{
      metadata: { name: string; generation: number; ownerReferences?: Array<{ kind: string; name: string }> };
    }>;
  };
  return items.flatMap((d) => {
    const owner = d.metadata.ownerReferences?.find((o) => o.kind === "ApiServerSource");
    return owner ? [{ name: d.metadata.name, generation: d.metadata.generation, source: owner.name }] : [];
  });
}

/**
 * Knative writes a source's status after it has updated the adapter Deployment, so a status that lists today's
 * namespaces means the Deployment is what it renders for them; `kubectl rollout status` then waits until only
 * its new pod runs.
 */
async function adaptersSettled(kubectl: (...args: string[]) => Promise<string>): Promise<void> {
  const rendered = await waitFor(
    "every ApiServerSource reconciled for the namespaces that exist",
    async () => {
      const namespaces = (await kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}"))
        .split(/\s+/)
        .filter(Boolean)
        .sort();
      const { items } = JSON.parse(
        await kubectl("-n", SYSTEM_NAMESPACE, "get", "apiserversources", "-o", "json"),
      ) as { items: SourceState[] };
      const current = items.every(
        (s) =>
          s.status?.observedGeneration === s.metadata.generation &&
          (!selectsAllNamespaces(s.spec.namespaceSelector) ||
            s.status?.namespaces?.join(",") === namespaces.join(",")),
      );
      return current ? items : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  const adapters = (await adapterDeployments(kubectl)).filter((d) =>
    rendered.some((s) => s.metadata.name === d.source),
  );
  if (adapters.length !== rendered.length)
    throw new Error(`${rendered.length} ApiServerSources but ${adapters.length} adapter Deployments`);
  for (const d of adapters)
    await kubectl("-n", SYSTEM_NAMESPACE, "rollout", "status", "--timeout=180s", `deployment/${d.name}`);
}

/**
 * With authentication-oidc on, Knative gives each source its own OIDC ServiceAccount and resolves the sink's
 * audience; the functions accept exactly those identities (EVENT_SENDERS, from Knative's naming). A mismatch would
 * be every event refused 403, so it fails the start instead.
 */
async function checkOidcIdentities(kubectl: (...args: string[]) => Promise<string>): Promise<void> {
  for (const [plural, kind] of [
    ["apiserversources", "ApiServerSource"],
    ["pingsources", "PingSource"],
  ] as const) {
    const { items } = JSON.parse(await kubectl("-n", SYSTEM_NAMESPACE, "get", plural, "-o", "json")) as {
      items: Array<{
        metadata: { name: string };
        spec: { sink: { audience?: string } };
        status?: { auth?: { serviceAccountName?: string }; sinkAudience?: string };
      }>;
    };
    for (const src of items) {
      const expected = knativeOidcServiceAccount({ kind, name: src.metadata.name });
      const got = src.status?.auth?.serviceAccountName;
      if (got !== expected || src.status?.sinkAudience !== src.spec.sink.audience)
        throw new Error(
          `${kind} ${src.metadata.name}: Knative's OIDC identity ${got} for audience ${src.status?.sinkAudience}; the functions expect ${expected} for ${src.spec.sink.audience}`,
        );
    }
  }
}
