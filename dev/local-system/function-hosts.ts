// Starts function hosts as real processes from their bundles (as a container runs them) and waits for readiness.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, spawnTied, tailOf, waitFor, type Tied } from "../processes.ts";
import { bundleOf } from "./bundles.ts";
import { FUNCTION_PROCESS_ENV, nodeFlagsOf } from "../function-process-env.ts";

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
    /** The bundle to run; by default this run's build of the current sources (bundles.ts). */
    bundle?: string;
    /** Run the TypeScript sources through tsx instead of a bundle (slower to start). */
    fromSources?: boolean;
  },
): Promise<RunningFunction> {
  const port = opts.port ?? (await freePort());
  const proc = spawnTied(
    name,
    process.execPath,
    opts.fromSources
      ? ["--import", "tsx", join(repoRoot, "shared/host/main.ts"), name]
      : [...nodeFlagsOf(name), "--enable-source-maps", opts.bundle ?? (await bundleOf(name))],
    {
      cwd: repoRoot,
      env: {
        ...process.env,
        ...FUNCTION_PROCESS_ENV,
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
      // A live process that is still starting (a loaded machine) gets up to five minutes; a dead one fails at
      // once with what it last said.
      timeoutMs: 30_000,
      maxMs: 300_000,
      progressing: () => proc.running(),
      intervalMs: 25,
      failFast: () =>
        proc.running()
          ? undefined
          : `${name} exited` + (opts.logFile ? `; the end of ${opts.logFile}:\n${tailOf(opts.logFile)}` : ""),
    },
  );
  // A bundle started under other Node flags than its code cache was written with compiles anew at every start, and
  // what is measured here would not be what is deployed: refused, not just logged.
  if (
    opts.logFile &&
    !opts.fromSources &&
    readFileSync(opts.logFile, "utf8").includes("code cache rejected")
  ) {
    proc.kill("SIGKILL");
    throw new Error(`${name}: its code cache was rejected (Node flags of dev/function-process-env.ts?)`);
  }
  return { name, url, process: proc };
}
