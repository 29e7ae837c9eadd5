// A small HTTPS proxy in front of the API server, for functions given a kubeconfig that points at it: it counts
// what passes and can inject faults (a 409 on the first write to each object). The API server itself is real.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { Agent, createServer, request, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";

const run = promisify(execFile);

export interface ProxyCounts {
  requests: number;
  /** writes passed on to the API server */
  writes: number;
  /** 409s answered by the proxy instead of the API server */
  injectedConflicts: number;
  /** requests the API server could not be reached for (the client's connection is dropped, as on a real outage) */
  upstreamFailures: number;
  /** TLS connections clients opened to the proxy (a client that reuses connections opens few) */
  connections: number;
}

export interface FaultProxy {
  url: string;
  counts: ProxyCounts;
  /** `METHOD path` of each request passed on, oldest first (the last 1,000) */
  requestLog: string[];
  /** When on, the first write to each object (and to each generateName) is answered 409 Conflict. */
  conflictOnFirstWrite: boolean;
  /** A copy of a ServiceAccount token kubeconfig that talks to the API server through this proxy. */
  kubeconfigVia(original: string): Promise<string>;
  close(): Promise<void>;
}

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);
// Questions, not writes: a conflict on them would mean nothing.
const REVIEWS = /\/(tokenreviews|subjectaccessreviews)$/;

export async function startFaultProxy(upstream: { server: string; caFile: string }): Promise<FaultProxy> {
  const dir = await mkdtemp(join(tmpdir(), "fault-proxy-"));
  await run(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "key.pem",
      "-out",
      "cert.pem",
      "-days",
      "2",
      "-subj",
      "/CN=fault-proxy",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { cwd: dir },
  );
  const cert = await readFile(join(dir, "cert.pem"));
  const upstreamUrl = new URL(upstream.server);
  const agent = new Agent({ keepAlive: true, ca: await readFile(upstream.caFile) });
  const written = new Set<string>();
  const counts: ProxyCounts = {
    requests: 0,
    writes: 0,
    injectedConflicts: 0,
    upstreamFailures: 0,
    connections: 0,
  };

  const server: Server = createServer({ cert, key: await readFile(join(dir, "key.pem")) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      counts.requests++;
      const body = Buffer.concat(chunks);
      const path = (req.url ?? "/").split("?")[0]!;
      proxy.requestLog.push(`${req.method} ${path}`);
      if (proxy.requestLog.length > 1000) proxy.requestLog.shift();
      const isWrite = WRITES.has(req.method ?? "") && !REVIEWS.test(path);
      if (isWrite && proxy.conflictOnFirstWrite) {
        const key = `${path}/${req.method === "POST" ? createdName(body) : ""}`;
        if (!written.has(key)) {
          written.add(key);
          counts.injectedConflicts++;
          res.writeHead(409, { "content-type": "application/json" });
          res.end(
            JSON.stringify({
              kind: "Status",
              apiVersion: "v1",
              metadata: {},
              status: "Failure",
              message: `Operation cannot be fulfilled on ${path}: the object has been modified; please apply your changes to the latest version and try again (injected by the test's fault proxy)`,
              reason: "Conflict",
              code: 409,
            }),
          );
          return;
        }
      }
      if (isWrite) counts.writes++;
      const headers = { ...req.headers, host: upstreamUrl.host };
      const up = request(
        {
          host: upstreamUrl.hostname,
          port: upstreamUrl.port,
          method: req.method,
          path: req.url,
          headers,
          agent,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on("error", () => {
        counts.upstreamFailures++;
        res.destroy();
      });
      up.end(body);
    });
  });
  server.on("secureConnection", () => counts.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const proxy: FaultProxy = {
    url,
    counts,
    requestLog: [],
    conflictOnFirstWrite: false,
    async kubeconfigVia(original) {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(original);
      const user = kc.getCurrentUser();
      if (!user?.token) throw new Error(`${original} has no token; the proxy passes bearer tokens only`);
      const via = new k8s.KubeConfig();
      via.loadFromOptions({
        clusters: [{ name: "via-proxy", server: url, caData: cert.toString("base64") }],
        users: [{ name: user.name, token: user.token }],
        contexts: [{ name: "via-proxy", cluster: "via-proxy", user: user.name }],
        currentContext: "via-proxy",
      });
      const file = join(dir, `${user.name}-${Math.random().toString(36).slice(2, 8)}.kubeconfig`);
      await writeFile(file, via.exportConfig(), { mode: 0o600 });
      return file;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      agent.destroy();
    },
  };
  return proxy;
}

function createdName(body: Buffer): string {
  try {
    const meta = (
      JSON.parse(body.toString("utf8")) as { metadata?: { name?: string; generateName?: string } }
    ).metadata;
    return meta?.name ?? meta?.generateName ?? "";
  } catch {
    return "";
  }
}
