// Command line entry: `host.ts <function> [flags]` validates config, runs init, serves, and shuts down gracefully.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { ConfigError, helpText, parseConfig, readRawConfig, runtimeConfigShape } from "./config.ts";
import type { AnyFunctionDefinition } from "./define.ts";
import { createLogger } from "./logger.ts";
import { createFunctionHost } from "./server.ts";
import { createRuntimeMetrics } from "./metrics.ts";
import { systemClock } from "./clock.ts";
import { createKube, loadKubeConfig, type Kube } from "../kube/client.ts";
import { functionNames, functionsDir } from "./names.ts";

const hostShape = {
  ...runtimeConfigShape,
  HOST: z.string().default("0.0.0.0").describe("address to listen on"),
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h") {
    console.log(`Usage: host.ts <function> [flags]    functions: ${functionNames().join(", ")}`);
    process.exit(name ? 0 : 2);
  }
  if (!functionNames().includes(name)) {
    console.error(`unknown function ${JSON.stringify(name)}; one of: ${functionNames().join(", ")}`);
    process.exit(2);
  }
  const mod = (await import(pathToFileURL(join(functionsDir, name, "index.ts")).href)) as {
    default: AnyFunctionDefinition;
  };
  const def = mod.default;
  const shape = { ...hostShape, ...def.config };

  let config: z.infer<z.ZodObject<typeof hostShape>> & Record<string, unknown>;
  try {
    const raw = readRawConfig(shape, rest, process.env);
    if (raw.help) {
      console.log(helpText(def.name, def.description, shape));
      process.exit(0);
    }
    config = parseConfig(shape, raw.values) as typeof config;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${def.name}: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }

  const log = createLogger(config.LOG_LEVEL, { function: def.name });
  const metrics = createRuntimeMetrics(def.name);
  const kubeConfig = loadKubeConfig(config.KUBECONFIG);
  let kube: Kube | undefined;
  const state = await def.init({
    config,
    log,
    clock: systemClock,
    kube: () => (kube ??= createKube(kubeConfig)),
    metrics: metrics.registry,
  });

  const host = createFunctionHost(def, state, {
    log,
    clock: systemClock,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    requestTimeoutMs: config.REQUEST_TIMEOUT_SECONDS * 1000,
    metrics,
  });
  const server = host.app.listen(config.PORT, config.HOST);
  await new Promise<void>((res, rej) => server.once("listening", res).once("error", rej));
  server.requestTimeout = (config.REQUEST_TIMEOUT_SECONDS + 5) * 1000;
  const { port } = server.address() as AddressInfo;
  host.setReady(true);
  log.info("listening", { port, host: config.HOST, pid: process.pid });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    host.setReady(false);
    server.close();
    server.closeIdleConnections();
    const grace = setTimeout(() => host.abortAll("shutdown"), config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
    await host.drained();
    clearTimeout(grace);
    await def.shutdown?.(state);
    server.closeAllConnections();
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(JSON.stringify({ level: "error", msg: "failed to start", error: String(err) }));
  process.exit(1);
});
