// The TLS backend the kube-apiserver calls (test/fixtures/tls-backend.ts), started on a test host.
import { join } from "node:path";
import type { TestHost } from "./netns.ts";
import { spawnTied, type Tied } from "../../dev/processes.ts";

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
