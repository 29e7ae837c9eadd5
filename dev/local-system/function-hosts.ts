// Starts function hosts as real processes (the way `npm start` and Knative run them) and waits for readiness.
import { join } from "node:path";
import { freePort, spawnTied, waitFor, type Tied } from "../processes.ts";

export interface RunningFunction {
  name: string;
  url: string;
  process: Tied;
}

const repoRoot = join(import.meta.dirname, "../..");

export async function startFunction(
  name: string,
  opts: {
    kubeconfig: string;
    env?: Record<string, string>;
    logFile?: string;
    port?: number;
    /** Run this bundle (`npm run build`'s dist/<name>.mjs) instead of the TypeScript sources through tsx. */
    bundle?: string;
  },
): Promise<RunningFunction> {
  const port = opts.port ?? (await freePort());
  const proc = spawnTied(
    name,
    process.execPath,
    opts.bundle ? [opts.bundle] : ["--import", "tsx", join(repoRoot, "shared/runtime/host.ts"), name],
    {
      cwd: repoRoot,
      env: {
        ...process.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        KUBECONFIG: opts.kubeconfig,
        ...opts.env,
      },
      logFile: opts.logFile,
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `${name} readiness`,
    async () => ((await fetch(`${url}/health/readiness`).catch(() => undefined))?.ok ? true : undefined),
    {
      timeoutMs: 30_000,
      intervalMs: 25,
      failFast: () =>
        proc.running() ? undefined : `${name} exited${opts.logFile ? `; see ${opts.logFile}` : ""}`,
    },
  );
  return { name, url, process: proc };
}
