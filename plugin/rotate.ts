// `rotate`: rotate-ca's POST /rotate with the user's own token, through the API server's Service proxy (the token
// in rotate-ca's own header, since the API server consumes Authorization) or straight to --url.
import type * as k8s from "@kubernetes/client-node";
import { request } from "node:https";
import { request as plainRequest } from "node:http";
import { EXIT, PluginError } from "./access.ts";
import { where } from "./ca.ts";
import { PROXIED_AUTHORIZATION_HEADER } from "../shared/kube/auth.ts";

export interface RotateOptions {
  reason: string;
  mode: "overlap" | "replace";
  dryRun: boolean;
  /** rotate-ca's own URL (a port-forward, an in-cluster address); default: the Service proxy */
  url?: string;
}

const PROXY_PATH = `/api/v1/namespaces/${where.namespace}/services/http:rotate-ca:80/proxy/rotate`;

async function post(url: URL, headers: Record<string, string>, tls: object, body: string) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const send = url.protocol === "https:" ? request : plainRequest;
    const req = send(url, { method: "POST", ...tls, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

export async function rotate(kc: k8s.KubeConfig, opts: RotateOptions): Promise<Record<string, unknown>> {
  const tls: { headers?: Record<string, string> } & Record<string, unknown> = {};
  await kc.applyToHTTPSOptions(tls);
  const token = /^Bearer\s+(\S+)$/i.exec(
    String(tls.headers?.Authorization ?? tls.headers?.authorization ?? ""),
  )?.[1];
  if (!token) {
    throw new PluginError(
      "rotate needs a bearer token in the kubeconfig (rotate-ca checks it with a TokenReview); client certificates cannot be forwarded",
      EXIT.usage,
    );
  }
  const server = kc.getCurrentCluster()!.server;
  const url = opts.url ? new URL("/rotate", opts.url) : new URL(PROXY_PATH, server);
  const body = JSON.stringify({ reason: opts.reason, mode: opts.mode, dryRun: opts.dryRun });
  const headers = {
    ...(tls.headers ?? {}),
    authorization: `Bearer ${token}`,
    // Through the Service proxy the API server consumes Authorization; rotate-ca reads the token from here.
    ...(opts.url ? {} : { [PROXIED_AUTHORIZATION_HEADER]: `Bearer ${token}` }),
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
  };
  let res;
  try {
    res = await post(url, headers, opts.url ? {} : tls, body);
  } catch (err) {
    throw new PluginError(`cannot reach rotate-ca at ${url.origin}: ${(err as Error).message}`, EXIT.error);
  }
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(res.text) as Record<string, unknown>;
  } catch {
    json = { message: res.text.trim() };
  }
  if (res.status === 200) return json;
  const message = String(
    (json.error as { message?: string } | undefined)?.message ?? json.message ?? res.text,
  ).trim();
  if (res.status === 401 && !opts.url) {
    throw new PluginError(
      `rotate-ca answered 401 through the API server's Service proxy: ${message}. Is rotate-ca older than the ` +
        `${PROXIED_AUTHORIZATION_HEADER} header? Reach it directly instead: ` +
        "kubectl -n service-ca port-forward svc/rotate-ca 8080:80, then --url http://127.0.0.1:8080",
      EXIT.forbidden,
    );
  }
  if (res.status === 403 && !json.error && !opts.url) {
    throw new PluginError(
      `cannot get services/proxy in ${where.namespace} (forbidden): ${message}`,
      EXIT.forbidden,
    );
  }
  if (res.status === 401 || res.status === 403)
    throw new PluginError(`rotate-ca refused: ${message}`, EXIT.forbidden);
  throw new PluginError(`rotate-ca answered ${res.status}: ${message}`, EXIT.error);
}

export function printRotation(r: Record<string, unknown>): string {
  const ca = (x: unknown) => {
    const c = x as { ca?: string; notAfter?: string } | undefined;
    return c ? `${c.ca} (not after ${c.notAfter})` : "?";
  };
  if (r.outcome === "dry-run") {
    const cur = r.wouldRotate as { ca?: string; notAfter?: string } | undefined;
    return `dry run (${String(r.mode)}), nothing written: would replace ${ca(cur)} with a new CA; authorized as ${String(r.user)}`;
  }
  const lines = [`${String(r.outcome)} (${String(r.mode)}): ${ca(r.old)} -> ${ca(r.new)}`];
  if (r.previousTrustedUntil) lines.push(`previous CA trusted until ${String(r.previousTrustedUntil)}`);
  else if (r.mode === "replace") lines.push("previous CA no longer trusted; every certificate is re-issued");
  if (r.fanOut) lines.push(String(r.fanOut));
  return lines.join("\n");
}
