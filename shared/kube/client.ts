// The one place that talks to the API server: client construction and error classification.
import * as k8s from "@kubernetes/client-node";
import { FunctionError } from "../runtime/errors.ts";
import { createRest, KubeApiError, type Rest } from "./rest.ts";

export function loadKubeConfig(kubeconfigPath?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else if (process.env.KUBERNETES_SERVICE_HOST) loadInCluster(kc, process.env);
  else
    throw new FunctionError(
      "internal",
      "no cluster credentials: set KUBECONFIG (or --kubeconfig) for a local run, or run in a Pod with a ServiceAccount",
    );
  return kc;
}

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * client-node's loadFromCluster, less its one costly step: it asks node:net's isIPv6 whether to bracket the host,
 * and compiling Node's IPv6 pattern was 3–5 ms of every function's start (profiled). An IPv6 address literal holds a
 * colon, a host name or IPv4 address never does. The namespace file it also reads is used by nothing here.
 */
export function loadInCluster(kc: k8s.KubeConfig, env: NodeJS.ProcessEnv): void {
  const host = env.KUBERNETES_SERVICE_HOST ?? "";
  const port = env.KUBERNETES_SERVICE_PORT ?? "";
  const scheme = port === "80" || port === "8080" || port === "8001" ? "http" : "https";
  kc.loadFromClusterAndUser(
    {
      name: "inCluster",
      server: `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}`,
      caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`,
      skipTLSVerify: false,
    },
    {
      name: "inClusterUser",
      authProvider: { name: "tokenFile", config: { tokenFile: `${SERVICE_ACCOUNT_DIR}/token` } },
    },
  );
}

/** What the functions reach the API server with, built once per process. */
export interface Kube {
  config: k8s.KubeConfig;
  rest: Rest;
}

/** What a function's init gets from the host to reach the API server. */
export interface KubeAccess {
  /** Built on first use, so a function that never calls the API server never needs credentials. */
  kube: () => Kube;
}

export const createKube = (config: k8s.KubeConfig): Kube => ({ config, rest: createRest(config) });

export const statusOf = (err: unknown): number | undefined =>
  err instanceof KubeApiError ? err.code : undefined;

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
  if (err instanceof KubeApiError) {
    const msg = (err.body as { message?: unknown } | undefined)?.message;
    return typeof msg === "string" ? msg : `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
