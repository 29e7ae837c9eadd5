// The user's own kubeconfig and rights: every API call names the right it needs, so a refusal says which one.
import * as k8s from "@kubernetes/client-node";

/** A failure the user can act on; `code` is the process's exit code. */
export class PluginError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export const EXIT = { ok: 0, finding: 1, usage: 2, forbidden: 3, error: 4 } as const;

export interface Right {
  verb: string;
  resource: string;
  namespace?: string;
  name?: string;
}

export const describeRight = (r: Right) =>
  `${r.verb} ${r.resource}${r.name ? `/${r.name}` : ""}${r.namespace ? ` in ${r.namespace}` : " at cluster scope"}`;

const status = (err: unknown) => (err instanceof k8s.ApiException ? err.code : undefined);

/** Runs one API call; a 401/403 becomes "cannot <right> (forbidden)", a 404 undefined, anything else an error. */
export async function call<T>(right: Right, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const code = status(err);
    if (code === 404) return undefined;
    if (code === 401 || code === 403) {
      throw new PluginError(
        `cannot ${describeRight(right)} (${code === 403 ? "forbidden" : "unauthorized"})`,
        EXIT.forbidden,
      );
    }
    const detail = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new PluginError(`cannot ${describeRight(right)}: ${detail}`, EXIT.error);
  }
}

/** Like `call`, but a missing right is reported back instead of thrown (for parts a report can do without). */
export async function tryCall<T>(
  right: Right,
  fn: () => Promise<T>,
): Promise<{ value?: T; denied?: string }> {
  try {
    return { value: await call(right, fn) };
  } catch (err) {
    if (err instanceof PluginError && err.code === EXIT.forbidden) return { denied: err.message };
    throw err;
  }
}

export function loadKubeConfig(opts: { kubeconfig?: string; context?: string }): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault(); // KUBECONFIG, then ~/.kube/config, then in-cluster
  } catch (err) {
    throw new PluginError(`cannot load the kubeconfig: ${(err as Error).message}`, EXIT.usage);
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      throw new PluginError(`no context ${opts.context} in the kubeconfig`, EXIT.usage);
    }
    kc.setCurrentContext(opts.context);
  }
  if (!kc.getCurrentCluster()) throw new PluginError("the kubeconfig names no current cluster", EXIT.usage);
  return kc;
}
