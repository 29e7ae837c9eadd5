// The functions' HTTP transport to the API server: plain JSON over keep-alive connections. client-node's
// KubeConfig still loads the configuration and authenticates every request (in-cluster token files, client
// certificates, exec plugins); what is left out is its generated API classes and their ObjectSerializer, whose
// hundreds of model classes were a third of every function's start-up and ~2 CPU ms of every request.
import * as http from "node:http";
import * as https from "node:https";
import * as zlib from "node:zlib";
import type * as k8s from "@kubernetes/client-node";

/** An answer of the API server outside 2xx; `body` is its Status object when it sent one. */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly body: unknown,
    what: string,
  ) {
    const message = (body as { message?: unknown } | undefined)?.message;
    super(`${what}: HTTP ${code}${typeof message === "string" ? `: ${message}` : ""}`);
    this.name = "KubeApiError";
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RestRequest {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Query;
  body?: unknown;
  /** Of the body; JSON unless a patch says which kind it is. */
  contentType?: string;
  accept?: string;
}

export type Rest = <T>(req: RestRequest) => Promise<T>;

/** No API call of a function may hang its event forever (client-node sets no limit at all). */
const REQUEST_TIMEOUT_MS = 30_000;

export function createRest(config: k8s.KubeConfig): Rest {
  const agentFor = keepAliveAgents();
  return async <T>(req: RestRequest): Promise<T> => {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error("no current cluster in the kubeconfig");
    const url = new URL(req.path + queryString(req.query), cluster.server);
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const opts: https.RequestOptions = {
      method: req.method,
      headers: {
        accept: req.accept ?? "application/json",
        // Uncompressed, unlike client-go: the API server would gzip every large answer (list pages), spending its
        // own CPU, the scarce one, and this process's on inflating it. Since the scan holds a page at a time, that
        // saves no memory either (100,000 Services: 50.1 s / 120.1 MB with gzip, 43.7 s / 116.3 MB without).
        "accept-encoding": "identity",
        // Node frames a DELETE's body by nothing unless told its length, and the API server would read it as
        // the start of the connection's next request (answered 400).
        ...(payload
          ? { "content-type": req.contentType ?? "application/json", "content-length": payload.length }
          : {}),
      },
      timeout: REQUEST_TIMEOUT_MS,
    };
    await config.applyToHTTPSOptions(opts);
    // client-node makes a new agent per call; a proxy's agent stays as it is made, any other is shared.
    if (!cluster.proxyUrl && url.protocol === "https:") opts.agent = agentFor(opts);
    else if (url.protocol === "http:" && !cluster.proxyUrl) opts.agent = plainAgent;
    return send<T>(url, opts, payload, `${req.method} ${req.path}`);
  };
}

function send<T>(
  url: URL,
  opts: https.RequestOptions,
  payload: Buffer | undefined,
  what: string,
): Promise<T> {
  const transport = url.protocol === "http:" ? http : https;
  return new Promise<T>((resolve, reject) => {
    const request = transport.request(url, opts, (res) => {
      const chunks: Buffer[] = [];
      const body = res.headers["content-encoding"] === "gzip" ? res.pipe(zlib.createGunzip()) : res;
      body.on("data", (c: Buffer) => chunks.push(c));
      body.on("error", reject);
      body.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = { message: text.slice(0, 200) };
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve(body as T);
        else reject(new KubeApiError(status, body, what));
      });
    });
    request.on("timeout", () => request.destroy(new Error(`${what}: no answer in ${REQUEST_TIMEOUT_MS} ms`)));
    request.on("error", reject);
    request.end(payload);
  });
}

function queryString(query: Query | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : "";
}

const plainAgent = new http.Agent({ keepAlive: true });

/**
 * One keep-alive agent per set of TLS options, so requests one after another share a connection; a changed CA
 * or client certificate gets a new agent. Older credentials' agents are forgotten, not destroyed: requests may
 * still be using them. KubeConfig reads the files anew for every request, so the options are compared by bytes,
 * and the agent holds them as strings: Node names each request's connection pool by concatenating them, which
 * for Buffers is a conversion per request (a third of a GET's CPU, profiled).
 */
function keepAliveAgents(): (opts: https.RequestOptions) => https.Agent {
  type Tls = Pick<https.RequestOptions, "ca" | "cert" | "key" | "servername" | "rejectUnauthorized">;
  const agents: Array<{ tls: Tls; agent: https.Agent }> = [];
  const same = (a: Tls, b: Tls) =>
    a.servername === b.servername &&
    a.rejectUnauthorized === b.rejectUnauthorized &&
    sameBytes(a.ca, b.ca) &&
    sameBytes(a.cert, b.cert) &&
    sameBytes(a.key, b.key);
  return (opts) => {
    const tls: Tls = {
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      servername: opts.servername,
      rejectUnauthorized: opts.rejectUnauthorized,
    };
    delete opts.ca;
    delete opts.cert;
    delete opts.key;
    const known = agents.find((a) => same(a.tls, tls));
    if (known) return known.agent;
    const agent = new https.Agent({
      ca: asText(tls.ca),
      cert: asText(tls.cert),
      key: asText(tls.key),
      servername: tls.servername,
      rejectUnauthorized: tls.rejectUnauthorized,
      keepAlive: true,
    });
    agents.unshift({ tls, agent });
    if (agents.length > 4) agents.pop();
    return agent;
  };
}

function sameBytes(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return asText(a) === asText(b);
}

/** KubeConfig gives Buffers (or nothing); strings and lists of either are taken too. */
function asText(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.map((x) => asText(x) ?? "").join("");
  return Buffer.isBuffer(v) ? v.toString("latin1") : String(v);
}
