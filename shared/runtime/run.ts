// Serves one function: validates its config, runs init, serves, and shuts down gracefully. What the function's
// init gets besides config, log, clock and metrics (an API client, say) and who checks senders' tokens are the
// caller's wiring (shared/host/run-host.ts): the runtime knows no API server.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import * as z from "zod";
import { ConfigError, helpText, parseConfig, readRawConfig, runtimeConfigShape } from "./config.ts";
import type { AnyFunctionDefinition } from "./define.ts";
import { createLogger } from "./logger.ts";
import { createFunctionHost } from "./server.ts";
import { createRuntimeMetrics } from "./metrics.ts";
import { systemClock } from "./clock.ts";
import type { Clock } from "./clock.ts";
import { createSenderCheck, senderConfigShape, type TokenVerifier } from "./event-senders.ts";

const hostShape = {
  ...runtimeConfigShape,
  // Unset, Node binds its unspecified address without a DNS lookup of it, which a set HOST costs (dns.lookup, and
  // compiling node:net's IPv6 pattern to filter its answers: 7 ms of a start here).
  HOST: z
    .string()
    .min(1)
    .optional()
    .describe("address to listen on (default: every address, IPv6 and IPv4 where the Pod has IPv6)"),
};

export type HostConfig = z.infer<z.ZodObject<typeof hostShape>>;

/** What the caller joins to the runtime once the configuration is valid: built before the function's init. */
export interface Wiring<Services extends object> {
  /** Merged into the function's init context. */
  services: Services;
  /** Checks event senders' tokens; `prefetch` runs once the function is serving. */
  tokens: TokenVerifier & { prefetch(): Promise<void> };
}

export async function runFunction<Services extends object>(
  def: AnyFunctionDefinition<Services>,
  rest: string[],
  wire: (config: HostConfig, clock: Clock) => Wiring<Services>,
): Promise<void> {
  const senderShape = senderConfigShape(def.name, def.sources ?? []);
  const shape = { ...hostShape, ...senderShape, ...def.config };

  let config: z.infer<z.ZodObject<typeof hostShape & typeof senderShape>> & Record<string, unknown>;
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
  const { services, tokens } = wire(config, systemClock);
  const state = await def.init({
    ...services,
    config,
    log,
    clock: systemClock,
    metrics: metrics.registry,
  });

  const host = createFunctionHost(def, state, {
    log,
    clock: systemClock,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    requestTimeoutMs: config.REQUEST_TIMEOUT_SECONDS * 1000,
    metrics,
    checkSender: createSenderCheck(
      { audience: config.EVENT_AUDIENCE, senders: config.EVENT_SENDERS },
      tokens,
      systemClock,
    ),
  });
  // Receiving a request (headers and body) gets the handler's budget plus 5 s, then 408. Node enforces
  // requestTimeout only while headersTimeout (60 s by default) is not above it, and checks every
  // connectionsCheckingInterval (30 s by default): a slow body used to hold a connection indefinitely.
  const receiveMs = (config.REQUEST_TIMEOUT_SECONDS + 5) * 1000;
  const server = createServer(
    {
      requestTimeout: receiveMs,
      headersTimeout: Math.min(receiveMs, 60_000),
      connectionsCheckingInterval: 1000,
    },
    host.app,
  ).listen(config.PORT, config.HOST);
  await new Promise<void>((res, rej) => server.once("listening", res).once("error", rej));
  const { port, address } = server.address() as AddressInfo;
  host.setReady(true);
  log.info("listening", { port, host: address, pid: process.pid });
  log.info("event senders", { audience: config.EVENT_AUDIENCE, senders: config.EVENT_SENDERS });
  // The API server's signing keys, once, so that no event (and no forged one) waits for or causes the fetch.
  const prefetched = tokens
    .prefetch()
    .catch((err: unknown) =>
      log.warn("signing keys not fetched yet; the first event fetches them", { error: String(err) }),
    );
  def.started?.(state);

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
  // Resolved once the start has settled (the build writes the code cache then: shared/host/launch.ts); nothing
  // waits for it to serve.
  await prefetched;
}
