// The TLS backend the kube-apiserver calls (test/fixtures/tls-backend.ts), started on a test host.
import { join } from "node:path";
import type * as k8s from "@kubernetes/client-node";
import type { TestHost } from "./netns.ts";
import { spawnTied, type Tied } from "../../dev/processes.ts";
import { annotations } from "../../shared/names.ts";

/**
 * Serves `dir`/tls.crt and `dir`/tls.key on the test host's address and `port` (it re-reads them on each
 * connection, so a test rotates it by rewriting the files); logs to `dir`/backend.log.
 */
export function startTlsBackend(host: TestHost, dir: string, port = 8443): Tied {
  return spawnTied(
    "tls-backend",
    host.exec[0]!,
    [
      ...host.exec.slice(1),
      process.execPath,
      "--import",
      "tsx",
      join(import.meta.dirname, "../fixtures/tls-backend.ts"),
      host.address,
      String(port),
      join(dir, "tls.crt"),
      join(dir, "tls.key"),
    ],
    { logFile: join(dir, "backend.log") },
  );
}

/**
 * The Service the backend serves as: `backend` in `namespace`, asking for its certificate in Secret
 * `backend-tls`, port 443 (https) sent to `port` on the test host by an Endpoints of its own (there is no Pod).
 */
export async function createBackendService(
  core: k8s.CoreV1Api,
  namespace: string,
  host: TestHost,
  port = 8443,
): Promise<k8s.V1Service> {
  const svc = await core.createNamespacedService({
    namespace,
    body: {
      metadata: { name: "backend", annotations: { [annotations.secretName]: "backend-tls" } },
      spec: { ports: [{ name: "https", port: 443, targetPort: port as unknown as k8s.IntOrString }] },
    },
  });
  await core.createNamespacedEndpoints({
    namespace,
    body: {
      metadata: { name: "backend" },
      subsets: [{ addresses: [{ ip: host.address }], ports: [{ name: "https", port }] }],
    },
  });
  return svc;
}
