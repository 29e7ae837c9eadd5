// CloudEvents exactly as Knative's ApiServerSource and PingSource send them (binary mode), for tests.
import { randomUUID } from "node:crypto";

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

export async function deliver(url: string, ev: { headers: Record<string, string>; body: string }) {
  const res = await fetch(url, { method: "POST", headers: ev.headers, body: ev.body });
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  return { status: res.status, json };
}
