// CloudEvents exactly as Knative's ApiServerSource and PingSource send them (binary mode), for tests, with the
// bearer token a source sends when Knative's OIDC sender authentication is on.
import { randomUUID } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { knativeOidcServiceAccount } from "../shared/runtime/event-senders.ts";
import { SYSTEM_NAMESPACE as SOURCE_NAMESPACE } from "../shared/names.ts";

export interface ObjectLike {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const plural = (kind: string) => kind.toLowerCase() + "s";

/** Headers and body of an ApiServerSource event about `obj` (Reference mode sends only a reference). */
export function apiServerEvent(
  obj: ObjectLike,
  action: "add" | "update" | "delete",
  mode: "ref" | "resource" = "ref",
  source = "https://127.0.0.1:6443",
): { headers: Record<string, string>; body: string } {
  const ns = obj.metadata.namespace ?? "";
  const data =
    mode === "ref"
      ? {
          kind: obj.kind,
          ...(ns ? { namespace: ns } : {}),
          name: obj.metadata.name,
          apiVersion: obj.apiVersion,
        }
      : obj;
  return {
    headers: {
      "ce-specversion": "1.0",
      "ce-id": randomUUID(),
      "ce-source": source,
      "ce-type": `dev.knative.apiserver.${mode}.${action}`,
      "ce-subject": `/apis/${obj.apiVersion}/namespaces/${ns}/${plural(obj.kind)}/${obj.metadata.name}`,
      "ce-kind": obj.kind,
      "ce-name": obj.metadata.name,
      ...(ns ? { "ce-namespace": ns } : {}),
      "ce-apiversion": obj.apiVersion,
      "content-type": "application/json",
    },
    body: JSON.stringify(data),
  };
}

export function pingEvent(
  namespace: string,
  name: string,
  data?: unknown,
): { headers: Record<string, string>; body: string } {
  return {
    headers: {
      "ce-specversion": "1.0",
      "ce-id": randomUUID(),
      "ce-source": `/apis/v1/namespaces/${namespace}/pingsources/${name}`,
      "ce-type": "dev.knative.sources.ping",
      "content-type": "application/json",
    },
    body: data === undefined ? "" : JSON.stringify(data),
  };
}

/**
 * POSTs `ev` as a source would. `token` is the sender's (`sourceToken`); undefined sends none, as a forger
 * might.
 */
export async function deliver(
  url: string,
  ev: { headers: Record<string, string>; body: string },
  token: string | undefined,
) {
  const headers = token ? { ...ev.headers, authorization: `Bearer ${token}` } : ev.headers;
  const res = await fetch(url, { method: "POST", headers, body: ev.body });
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  return { status: res.status, json };
}

interface SourceObject {
  kind: "ApiServerSource" | "PingSource";
  metadata: { name: string };
  spec: { sink: { ref: { name: string }; audience?: string } };
}

const tokens = new Map<string, Promise<{ token: string; until: number }>>();

/**
 * `call`, again while the API server answers 429 (as it does for a kind whose storage is still initializing just
 * after it restarted), waiting what its Retry-After says, for up to ten tries.
 */
async function whileTooMany<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const e = err as { code?: number; headers?: Record<string, string> };
      if (e.code !== 429 || attempt >= 10) throw err;
      const seconds = Number(e.headers?.["retry-after"] ?? 1);
      await new Promise((r) => setTimeout(r, (Number.isFinite(seconds) ? seconds : 1) * 1000));
    }
  }
}

/**
 * A token of one of function `fn`'s sources, as Knative's adapter gets it: TokenRequest for the source's OIDC
 * ServiceAccount with the audience of its sink (infra/ sets it), one hour. `kc` must be allowed to create tokens
 * for ServiceAccounts of the system namespace (the admin). Cached per API server and function for 50 minutes.
 */
export async function sourceToken(kc: k8s.KubeConfig, fn: string): Promise<string> {
  const key = `${kc.getCurrentCluster()?.server}|${fn}`;
  const hit = await tokens.get(key)?.catch(() => undefined);
  if (hit && hit.until > Date.now()) return hit.token;
  const cached = (async () => {
    const co = kc.makeApiClient(k8s.CustomObjectsApi);
    const list = async (plural: string, kind: SourceObject["kind"]) =>
      (
        (await whileTooMany(() =>
          co.listNamespacedCustomObject({
            group: "sources.knative.dev",
            version: "v1",
            namespace: SOURCE_NAMESPACE,
            plural,
          }),
        )) as { items: SourceObject[] }
      ).items.map((s) => ({ ...s, kind }));
    const sources = [
      ...(await list("apiserversources", "ApiServerSource")),
      ...(await list("pingsources", "PingSource")),
    ].filter((s) => s.spec.sink.ref.name === fn && s.spec.sink.audience);
    const source = sources[0];
    if (!source) throw new Error(`no source in ${SOURCE_NAMESPACE} delivers to ${fn} with an audience`);
    const issued = await whileTooMany(() =>
      kc.makeApiClient(k8s.CoreV1Api).createNamespacedServiceAccountToken({
        namespace: SOURCE_NAMESPACE,
        name: knativeOidcServiceAccount({ kind: source.kind, name: source.metadata.name }),
        body: { spec: { audiences: [source.spec.sink.audience!], expirationSeconds: 3600 } },
      }),
    );
    return { token: issued.status!.token, until: Date.now() + 50 * 60_000 };
  })();
  tokens.set(key, cached);
  cached.catch(() => tokens.delete(key));
  return (await cached).token;
}
