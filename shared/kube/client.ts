// The one place that talks to the API server: client construction and error classification.
import * as https from "node:https";
import * as k8s from "@kubernetes/client-node";
import { FunctionError } from "../runtime/errors.ts";

export function loadKubeConfig(kubeconfigPath?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else
    throw new FunctionError(
      "internal",
      "no cluster credentials: set KUBECONFIG (or --kubeconfig) for a local run, or run in a Pod with a ServiceAccount",
    );
  return kc;
}

/** The API clients, each built once per process (client-node clients are stateless and reusable). */
export interface Kube {
  config: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  objects: k8s.KubernetesObjectApi;
  certificates: k8s.CertificatesV1Api;
  authentication: k8s.AuthenticationV1Api;
  authorization: k8s.AuthorizationV1Api;
}

/** What a function's init gets from the host to reach the API server. */
export interface KubeAccess {
  /** Built on first use, so a function that never calls the API server never needs credentials. */
  kube: () => Kube;
}

export function createKube(config: k8s.KubeConfig): Kube {
  reuseConnections(config);
  return {
    config,
    core: config.makeApiClient(k8s.CoreV1Api),
    objects: k8s.KubernetesObjectApi.makeApiClient(config),
    certificates: config.makeApiClient(k8s.CertificatesV1Api),
    authentication: config.makeApiClient(k8s.AuthenticationV1Api),
    authorization: config.makeApiClient(k8s.AuthorizationV1Api),
  };
}

const reusing = new WeakSet<k8s.KubeConfig>();

/**
 * client-node (1.x) builds a new https.Agent for every request, so every API call paid a TCP connect and a full TLS
 * handshake (in a rotation's fan-out, most of an injector's CPU). Requests through this config share one
 * keep-alive agent per set of TLS options instead; a changed CA or client certificate gets a new agent. Proxy and
 * plain-HTTP agents are left as client-node makes them.
 */
function reuseConnections(config: k8s.KubeConfig): void {
  if (reusing.has(config)) return;
  reusing.add(config);
  const agents = new Map<string, https.Agent>();
  const authenticate = config.applySecurityAuthentication.bind(config);
  config.applySecurityAuthentication = async (context) => {
    await authenticate(context);
    const made = context.getAgent();
    if (!(made instanceof https.Agent)) return;
    const options = made.options as https.AgentOptions;
    const key = JSON.stringify(
      [options.ca, options.cert, options.key, options.servername, options.rejectUnauthorized].map((v) =>
        v === undefined ? null : String(v),
      ),
    );
    let agent = agents.get(key);
    if (!agent) {
      agent = new https.Agent({ ...options, keepAlive: true });
      agents.set(key, agent);
      // Older credentials' agents are forgotten (not destroyed: requests may still be using them).
      if (agents.size > 4) agents.delete(agents.keys().next().value!);
    }
    context.setAgent(agent);
  };
}

export const statusOf = (err: unknown): number | undefined =>
  err instanceof k8s.ApiException ? err.code : undefined;

export const isNotFound = (err: unknown) => statusOf(err) === 404;
export const isConflict = (err: unknown) => statusOf(err) === 409;

/** Maps an API error to the runtime's error kinds: 5xx, 429 and network errors are worth a redelivery. */
export function classifyKubeError(err: unknown, action: string): FunctionError {
  if (err instanceof FunctionError) return err;
  const code = statusOf(err);
  const reason = apiMessage(err);
  if (code === undefined)
    return new FunctionError("transient", `${action}: ${reason}`, undefined, { cause: err });
  if (code === 403 || code === 401)
    return new FunctionError("forbidden", `${action}: ${reason}`, { status: code }, { cause: err });
  if (code === 404)
    return new FunctionError("notFound", `${action}: ${reason}`, { status: code }, { cause: err });
  if (code === 409)
    return new FunctionError("conflict", `${action}: ${reason}`, { status: code }, { cause: err });
  if (code === 429 || code >= 500)
    return new FunctionError("transient", `${action}: ${reason}`, { status: code }, { cause: err });
  return new FunctionError("internal", `${action}: ${reason}`, { status: code }, { cause: err });
}

function apiMessage(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    const body = typeof err.body === "string" ? safeJson(err.body) : err.body;
    const msg = (body as { message?: unknown } | undefined)?.message;
    return typeof msg === "string" ? msg : `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { message: s.slice(0, 200) };
  }
}
