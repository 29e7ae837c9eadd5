// The whole system on this machine, wired as on a cluster: control plane → Knative CRDs → infra/ applied →
// each function as a process under its own ServiceAccount token → Knative's own adapters as event sources.
import { execFile } from "node:child_process";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../controlplane/control-plane.ts";
import { startFunction, type RunningFunction } from "./function-hosts.ts";
import { freePort, spawnTied, type Tied } from "../processes.ts";
import { deliver, pingEvent, sourceToken } from "../events.ts";
import { functionNames } from "../../shared/host/functions.ts";
import { knativeChildName, knativeOidcServiceAccount } from "../../shared/runtime/event-senders.ts";
import { knativeCrdManifest } from "./knative-crds.ts";

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, "../..");
export { SYSTEM_NAMESPACE } from "../../shared/names.ts";
import { SYSTEM_NAMESPACE } from "../../shared/names.ts";
const KNATIVE_NAMESPACE = "knative-eventing";

export interface LocalSystem {
  plane: ControlPlane;
  functions: Map<string, RunningFunction>;
  sources: Tied[];
  kc: k8s.KubeConfig;
  /** a kubeconfig authenticating as the given ServiceAccount of the system namespace */
  kubeconfigFor(serviceAccount: string): Promise<string>;
  stop(): Promise<void>;
}

/** Knative's CRDs, then `kubectl apply -k infra/`: ServiceAccounts, RBAC, Knative Services and sources. */
export async function installInfra(
  plane: Pick<ControlPlane, "kubectl" | "kubeconfig" | "dir">,
): Promise<void> {
  const kubectl = (...args: string[]) =>
    run(plane.kubectl, ["--kubeconfig", plane.kubeconfig, ...args], { maxBuffer: 32 << 20 });
  const work = join(plane.dir, "local-system");
  await mkdir(work, { recursive: true });
  await kubectl("apply", "--server-side", "-f", await knativeCrdManifest(work));
  await kubectl(
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd/apiserversources.sources.knative.dev",
    "crd/pingsources.sources.knative.dev",
    "crd/services.serving.knative.dev",
  );
  await kubectl("apply", "-k", join(repoRoot, "infra"));
  await createOidcIdentities(plane);
}

/**
 * What Knative's source reconcilers do with `authentication-oidc: enabled` (pkg/auth SetupOIDCServiceAccount,
 * apiserversource createOIDCRole/RoleBinding), for the sources infra/ created, since no eventing controller runs
 * here: each source's own OIDC ServiceAccount (owned by the source), and for an ApiServerSource a Role letting its
 * spec.serviceAccountName request tokens for it. mtping requests its PingSources' tokens with its ClusterRole.
 */
async function createOidcIdentities(plane: Pick<ControlPlane, "kubeconfig">): Promise<void> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(plane.kubeconfig);
  const co = kc.makeApiClient(k8s.CustomObjectsApi);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const ignoreExists = (err: unknown) => {
    if (!(err instanceof k8s.ApiException && err.code === 409)) throw err;
  };
  const labels = { "eventing.knative.dev/oidc": "enabled" };
  for (const [plural, kind] of [
    ["apiserversources", "ApiServerSource"],
    ["pingsources", "PingSource"],
  ] as const) {
    const { items } = (await co.listNamespacedCustomObject({
      group: "sources.knative.dev",
      version: "v1",
      namespace: SYSTEM_NAMESPACE,
      plural,
    })) as {
      items: Array<{ metadata: { name: string; uid: string }; spec: { serviceAccountName?: string } }>;
    };
    for (const src of items) {
      const sa = knativeOidcServiceAccount({ kind, name: src.metadata.name });
      const owner = {
        apiVersion: "sources.knative.dev/v1",
        kind,
        name: src.metadata.name,
        uid: src.metadata.uid,
        controller: true,
        blockOwnerDeletion: false,
      };
      await core
        .createNamespacedServiceAccount({
          namespace: SYSTEM_NAMESPACE,
          body: { metadata: { name: sa, labels, ownerReferences: [owner] } },
        })
        .catch(ignoreExists);
      if (kind !== "ApiServerSource" || !src.spec.serviceAccountName) continue;
      const role = knativeChildName(src.metadata.name, "-create-oidc-token");
      await rbac
        .createNamespacedRole({
          namespace: SYSTEM_NAMESPACE,
          body: {
            metadata: { name: role, labels, ownerReferences: [owner] },
            rules: [
              {
                apiGroups: [""],
                resources: ["serviceaccounts/token"],
                resourceNames: [sa],
                verbs: ["create"],
              },
            ],
          },
        })
        .catch(ignoreExists);
      await rbac
        .createNamespacedRoleBinding({
          namespace: SYSTEM_NAMESPACE,
          body: {
            metadata: { name: role, labels, ownerReferences: [owner] },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role },
            subjects: [
              { kind: "ServiceAccount", name: src.spec.serviceAccountName, namespace: SYSTEM_NAMESPACE },
            ],
          },
        })
        .catch(ignoreExists);
    }
  }
}

/** A kubeconfig that authenticates as a ServiceAccount of the system namespace (TokenRequest, 24 h). */
export async function serviceAccountKubeconfig(
  plane: Pick<ControlPlane, "kubeconfig" | "server" | "caFile" | "dir">,
  sa: string,
  namespace = SYSTEM_NAMESPACE,
): Promise<string> {
  const admin = new k8s.KubeConfig();
  admin.loadFromFile(plane.kubeconfig);
  const token = await admin.makeApiClient(k8s.CoreV1Api).createNamespacedServiceAccountToken({
    namespace,
    name: sa,
    body: { spec: { audiences: [], expirationSeconds: 24 * 3600 } },
  });
  const dir = join(plane.dir, "local-system");
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${namespace}.${sa}.kubeconfig`);
  const user = new k8s.KubeConfig();
  user.loadFromOptions({
    clusters: [{ name: "local", server: plane.server, caFile: plane.caFile }],
    users: [{ name: sa, token: token.status!.token }],
    contexts: [{ name: "local", cluster: "local", user: sa }],
    currentContext: "local",
  });
  // Written aside and renamed into place: an adapter started a moment ago with the same ServiceAccount may be reading
  // this path still, and a rewrite in place would hand it an empty file (it then exits: "no configuration").
  const aside = `${file}.${process.pid}.${randomUUID()}`;
  await writeFile(aside, user.exportConfig(), { mode: 0o600 });
  await rename(aside, file);
  return file;
}

export interface LocalSystemOptions {
  log?: (line: string) => void;
  /** Extra environment for every function (e.g. LOG_LEVEL). */
  functionEnv?: Record<string, string>;
  /** The kubeconfig a function runs with instead of its own (e.g. its own, through a counting proxy). */
  functionKubeconfig?: (fn: string, own: string) => Promise<string>;
  /** Runs once infra/ is applied and before any event source starts (objects the sources will never replay). */
  beforeSources?: (kc: k8s.KubeConfig) => Promise<void>;
}

export async function startLocalSystem(opts: LocalSystemOptions = {}): Promise<LocalSystem> {
  const log = opts.log ?? (() => {});
  const plane = await startControlPlane({ log });
  const functions = new Map<string, RunningFunction>();
  const sources: Tied[] = [];
  const stop = async () => {
    await Promise.all(sources.map((s) => s.stop(3000)));
    await Promise.all([...functions.values()].map((f) => f.process.stop()));
    await plane.stop();
  };
  try {
    const started = performance.now();
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(plane.kubeconfig);

    await installInfra(plane);
    log(`Knative CRDs and infra/ applied in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const kubeconfigFor = (sa: string) => serviceAccountKubeconfig(plane, sa);

    // Functions, each as its own ServiceAccount: RBAC is exercised exactly as deployed.
    const logs = join(plane.dir, "logs");
    await Promise.all(
      functionNames().map(async (name) => {
        const own = await kubeconfigFor(name);
        const fn = await startFunction(name, {
          kubeconfig: opts.functionKubeconfig ? await opts.functionKubeconfig(name, own) : own,
          logFile: join(logs, `${name}.log`),
          env: { ...(opts.functionEnv ?? {}) },
        });
        functions.set(name, fn);
      }),
    );

    await opts.beforeSources?.(kc);

    // The event sources, from the ApiServerSources and PingSources infra/ created.
    const sinkUrl = (name: string) => {
      const fn = functions.get(name);
      if (!fn) throw new Error(`a source points at ${name}, which is not a function of this repository`);
      return fn.url;
    };
    const co = kc.makeApiClient(k8s.CustomObjectsApi);
    const apiSources = (await co.listNamespacedCustomObject({
      group: "sources.knative.dev",
      version: "v1",
      namespace: SYSTEM_NAMESPACE,
      plural: "apiserversources",
    })) as { items: ApiServerSource[] };
    for (const src of apiSources.items) {
      sources.push(
        spawnTied(
          `apiserversource/${src.metadata.name}`,
          join(plane.binDir, "apiserver_receive_adapter"),
          ["--kubeconfig", await kubeconfigFor(src.spec.serviceAccountName)],
          {
            env: {
              ...process.env,
              ...adapterEnv(src, sinkUrl(src.spec.sink.ref.name), String(await freePort())),
            },
            logFile: join(logs, `apiserversource-${src.metadata.name}.log`),
          },
        ),
      );
    }
    await startPingAdapter(plane, kc, co, sinkUrl, logs, sources);
    log(`${sources.length} event source adapters started`);

    // ApiServerSource does not replay objects that existed before it started: one repair round now converges them.
    for (const name of [
      "expiry-scan",
      "inject-configmap",
      "inject-apiservice",
      "inject-crd",
      "inject-webhooks",
      "sign-csr",
      "distribute-ca",
    ]) {
      const res = await deliver(
        functions.get(name)!.url,
        pingEvent(SYSTEM_NAMESPACE, "startup", { reason: "startup" }),
        await sourceToken(kc, name),
      );
      if (res.status !== 200)
        log(`startup repair of ${name} answered ${res.status}: ${JSON.stringify(res.json)}`);
    }
    return { plane, functions, sources, kc, kubeconfigFor, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface ApiServerSource {
  metadata: { name: string; namespace: string };
  spec: {
    mode?: string;
    ceOverrides?: { extensions?: Record<string, string> };
    serviceAccountName: string;
    namespaceSelector?: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] };
    resources: Array<{
      apiVersion: string;
      kind: string;
      selector?: {
        matchLabels?: Record<string, string>;
        matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
      };
    }>;
    sink: { ref: { name: string }; audience?: string };
  };
}

/**
 * Knative's rule (apiserversource isEmptySelector): a selector with no labels and no expressions watches every
 * namespace; without one, a source watches only its own.
 */
export function selectsAllNamespaces(selector: ApiServerSource["spec"]["namespaceSelector"]): boolean {
  return (
    selector !== undefined &&
    Object.keys(selector.matchLabels ?? {}).length === 0 &&
    (selector.matchExpressions ?? []).length === 0
  );
}

/** A LabelSelector as the string form Knative's reconciler hands the adapter (metav1.LabelSelectorAsSelector). */
function labelSelectorString(
  sel: NonNullable<ApiServerSource["spec"]["resources"][number]["selector"]>,
): string {
  const labels = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  const expressions = (sel.matchExpressions ?? []).map(({ key, operator, values = [] }) => {
    const list = `(${[...values].sort().join(",")})`;
    if (operator === "In") return `${key} in ${list}`;
    if (operator === "NotIn") return `${key} notin ${list}`;
    if (operator === "Exists") return key;
    if (operator === "DoesNotExist") return `!${key}`;
    throw new Error(`unknown label selector operator ${operator}`);
  });
  return [...labels, ...expressions].sort().join(",");
}

/** The environment Knative's ApiServerSource reconciler gives the receive adapter's Deployment. */
export function adapterEnv(
  src: ApiServerSource,
  sink: string,
  profilingPort: string,
): Record<string, string> {
  const all = selectsAllNamespaces(src.spec.namespaceSelector);
  const config = {
    namespaces: all ? [] : [src.metadata.namespace],
    allNamespaces: all,
    resources: src.spec.resources.map((r) => {
      const [group, version] = r.apiVersion.includes("/") ? r.apiVersion.split("/") : ["", r.apiVersion];
      const selector = labelSelectorString(r.selector ?? {});
      return {
        gvr: { Group: group, Version: version, Resource: r.kind.toLowerCase() + "s" },
        ...(selector ? { selector } : {}),
      };
    }),
    mode: src.spec.mode ?? "Reference",
    failFast: false,
  };
  return {
    NAME: src.metadata.name,
    NAMESPACE: src.metadata.namespace,
    K_SINK: sink,
    K_SOURCE_CONFIG: JSON.stringify(config),
    K_LOGGING_CONFIG: "{}",
    K_OBSERVABILITY_CONFIG: "{}",
    K_LEADER_ELECTION_CONFIG: "{}",
    K_COMPONENT: "apiserversource",
    K_RESOURCE_GROUP: "apiserversources.sources.knative.dev",
    SYSTEM_NAMESPACE: KNATIVE_NAMESPACE,
    METRICS_DOMAIN: "knative.dev/eventing",
    POD_NAME: `${src.metadata.name}-adapter`,
    PROFILING_PORT: profilingPort,
    ...(src.spec.ceOverrides ? { K_CE_OVERRIDES: JSON.stringify(src.spec.ceOverrides) } : {}),
    // With authentication-oidc enabled the reconciler adds these (receive_adapter.go makeEnv): the adapter then
    // sends every event with a token for its own OIDC identity and the sink's audience.
    ...(src.spec.sink.audience
      ? {
          K_AUDIENCE: src.spec.sink.audience,
          K_OIDC_SERVICE_ACCOUNT: knativeOidcServiceAccount({
            kind: "ApiServerSource",
            name: src.metadata.name,
          }),
        }
      : {}),
  };
}

/**
 * mtping acts only on PingSources whose status is Ready with a sinkUri; with no eventing controller here,
 * the harness sets that status as the controller would, pointing at the local function.
 */
async function startPingAdapter(
  plane: ControlPlane,
  kc: k8s.KubeConfig,
  co: k8s.CustomObjectsApi,
  sinkUrl: (name: string) => string,
  logs: string,
  sources: Tied[],
) {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: KNATIVE_NAMESPACE } } });
  for (const name of ["config-logging", "config-observability"]) {
    await core.createNamespacedConfigMap({ namespace: KNATIVE_NAMESPACE, body: { metadata: { name } } });
  }
  const pings = (await co.listNamespacedCustomObject({
    group: "sources.knative.dev",
    version: "v1",
    namespace: SYSTEM_NAMESPACE,
    plural: "pingsources",
  })) as {
    items: Array<{
      metadata: { name: string; generation?: number };
      spec: { sink: { ref: { name: string }; audience?: string } };
    }>;
  };
  for (const p of pings.items)
    await markPingSourceReady(
      plane,
      p.metadata.name,
      sinkUrl(p.spec.sink.ref.name),
      p.metadata.generation ?? 1,
      p.spec.sink.audience,
    );
  sources.push(
    spawnTied("mtping", join(plane.binDir, "mtping"), ["--disable-ha", "--kubeconfig", plane.kubeconfig], {
      env: {
        ...process.env,
        SYSTEM_NAMESPACE: KNATIVE_NAMESPACE,
        NAMESPACE: KNATIVE_NAMESPACE,
        K_OBSERVABILITY_CONFIG: "{}",
        K_LOGGING_CONFIG: "{}",
        K_SINK_TIMEOUT: "-1",
        K_NO_SHUTDOWN_AFTER: "0",
        POD_NAME: "pingsource-mt-adapter-local",
        METRICS_DOMAIN: "knative.dev/eventing",
        PROFILING_PORT: String(await freePort()),
      },
      logFile: join(logs, "mtping.log"),
    }),
  );
}

export async function markPingSourceReady(
  plane: ControlPlane,
  name: string,
  sinkUri: string,
  generation = 1,
  sinkAudience?: string,
): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  const status = {
    status: {
      observedGeneration: generation,
      sinkUri,
      // As the reconciler marks them with OIDC on: mtping sends with a token for this identity and audience.
      ...(sinkAudience
        ? {
            sinkAudience,
            auth: { serviceAccountName: knativeOidcServiceAccount({ kind: "PingSource", name }) },
          }
        : {}),
      conditions: ["Ready", "SinkProvided", "Deployed", "OIDCIdentityCreated"].map((type) => ({
        type,
        status: "True",
        lastTransitionTime: now,
      })),
    },
  };
  await run(plane.kubectl, [
    "--kubeconfig",
    plane.kubeconfig,
    "patch",
    "pingsource",
    name,
    "-n",
    SYSTEM_NAMESPACE,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify(status),
  ]);
}
