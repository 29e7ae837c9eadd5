// The Knative-style HTTP host for one function: POST / takes a CloudEvent, /health/* answers probes.
import express, { type NextFunction, type Request, type Response } from "express";
import * as z from "zod";
import type { AnyFunctionDefinition } from "./define.ts";
import { asFunctionError, FunctionError, httpStatusFor } from "./errors.ts";
import { parseCloudEvent } from "./cloudevent.ts";
import type { Logger } from "./logger.ts";
import type { Clock } from "./clock.ts";
import type { RuntimeMetrics } from "./metrics.ts";
import { refusalBody, type SenderCheck } from "./event-senders.ts";

export interface HostOptions {
  log: Logger;
  clock: Clock;
  bodyLimitBytes: number;
  requestTimeoutMs: number;
  metrics: RuntimeMetrics;
  /** Who may POST events: run on the Authorization header before the body is read. */
  checkSender: SenderCheck;
}

export interface FunctionHost {
  app: express.Express;
  setReady(ready: boolean): void;
  /** Resolves once no request is in flight. */
  drained(): Promise<void>;
  /** Aborts the signal every in-flight handler holds. */
  abortAll(reason: string): void;
}

export function createFunctionHost(
  def: AnyFunctionDefinition,
  state: unknown,
  opts: HostOptions,
): FunctionHost {
  const app = express();
  app.disable("x-powered-by");
  let ready = false;
  const inflight = new Set<AbortController>();
  let idle: Array<() => void> = [];
  const settle = () => {
    if (inflight.size === 0) {
      for (const resolve of idle) resolve();
      idle = [];
    }
  };

  app.get("/health/liveness", (_req, res) => {
    res.type("text/plain").send("OK");
  });
  app.get("/health/readiness", (_req, res) => {
    res
      .status(ready ? 200 : 503)
      .type("text/plain")
      .send(ready ? "OK" : "not ready");
  });

  /** Runs one request's work: timeout, abort on shutdown, logging, metrics, and the one error-to-status mapping. */
  const serve = async (
    route: string,
    res: Response,
    work: (
      controller: AbortController,
      setLog: (l: Logger) => void,
    ) => Promise<Record<string, unknown> | void>,
  ) => {
    const started = performance.now();
    const controller = new AbortController();
    inflight.add(controller);
    let log = opts.log;
    try {
      const result = await withTimeout(
        work(controller, (l) => (log = l)),
        opts.requestTimeoutMs,
        controller,
      );
      log.info("request handled", { route, ms: elapsed(started), ...(result ?? {}) });
      opts.metrics.observe(route, 200, "ok", started);
      res.status(200).json({ ok: true, ...(result ?? {}) });
    } catch (err) {
      const fe = asFunctionError(err);
      const status = httpStatusFor(fe.kind);
      const fields = { route, kind: fe.kind, status, error: fe.message, ms: elapsed(started) };
      if (status >= 500) log.error("request failed", { ...fields, cause: causeOf(fe) });
      else log.warn("request rejected", fields);
      opts.metrics.observe(route, status, fe.kind, started);
      res.status(status).json({ error: { kind: fe.kind, message: fe.message, details: fe.details } });
    } finally {
      inflight.delete(controller);
      settle();
    }
  };

  // Senders first: nothing an unauthenticated caller sends is read, parsed, logged or handled.
  const authenticateSender = async (req: Request, res: Response, next: NextFunction) => {
    const started = performance.now();
    let verdict;
    try {
      verdict = await opts.checkSender(req.headers.authorization);
    } catch (err) {
      const fe = asFunctionError(err);
      opts.log.error("event sender not checked", {
        route: "cloudevent",
        error: fe.message,
        cause: causeOf(fe),
      });
      opts.metrics.observe("cloudevent", 503, "transient", started);
      res.status(503).json({ error: { kind: "transient", message: "try again later" } });
      return;
    }
    if ("status" in verdict) {
      const kind = verdict.status === 401 ? "unauthenticated" : "forbidden";
      opts.log.warn("event sender refused", {
        route: "cloudevent",
        status: verdict.status,
        reason: verdict.reason,
        ...(verdict.username ? { sender: verdict.username } : {}),
        remote: req.socket.remoteAddress,
      });
      opts.metrics.observe("cloudevent", verdict.status, kind, started);
      if (verdict.status === 401) res.set("WWW-Authenticate", "Bearer");
      res.status(verdict.status).json(refusalBody(verdict.status));
      return;
    }
    next();
  };

  app.post(
    "/",
    authenticateSender,
    express.raw({ type: () => true, limit: opts.bodyLimitBytes }),
    (req, res) =>
      serve("cloudevent", res, async (controller, setLog) => {
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const envelope = parseCloudEvent(req.headers, body);
        const log = opts.log.child({
          ceId: envelope.id,
          ceType: envelope.type,
          ceSource: envelope.source,
          ceSubject: envelope.subject,
        });
        setLog(log);
        const parsed = def.event.safeParse(envelope);
        if (!parsed.success) {
          throw new FunctionError(
            "malformed",
            `event not accepted by ${def.name}`,
            z.treeifyError(parsed.error),
          );
        }
        return def.handle(parsed.data, {
          state,
          log,
          clock: opts.clock,
          signal: controller.signal,
          cloudevent: {
            id: envelope.id,
            type: envelope.type,
            source: envelope.source,
            subject: envelope.subject,
            respondAsync: envelope.respondasync === "true",
          },
        });
      }),
  );

  for (const route of def.routes ?? []) {
    app[route.method === "GET" ? "get" : "post"](
      route.path,
      express.raw({ type: () => true, limit: opts.bodyLimitBytes }),
      (req, res) =>
        serve(route.path, res, async (controller) => {
          const raw = Buffer.isBuffer(req.body) ? req.body.toString("utf8") : "";
          let json: unknown = {};
          if (raw.trim() !== "") {
            try {
              json = JSON.parse(raw);
            } catch {
              throw new FunctionError("malformed", "body is not valid JSON");
            }
          }
          const parsed = route.body.safeParse(json);
          if (!parsed.success)
            throw new FunctionError("malformed", "invalid request body", z.treeifyError(parsed.error));
          return route.handle(parsed.data, {
            state,
            log: opts.log.child({ route: route.path }),
            clock: opts.clock,
            headers: req.headers,
            signal: controller.signal,
          });
        }),
    );
  }

  app.get("/metrics", async (_req, res) => {
    res.type(opts.metrics.registry.contentType).send(await opts.metrics.registry.metrics());
  });

  app.all("/", (_req, res) => {
    res
      .status(405)
      .set("Allow", "POST")
      .json({ error: { kind: "malformed", message: "POST a CloudEvent to /" } });
  });
  app.use((_req, res) => {
    res.status(404).json({ error: { kind: "notFound", message: "no such path" } });
  });
  // Body-parser failures (too large, aborted, bad encoding) arrive here.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string; message?: string };
    const status = typeof e.status === "number" && e.status >= 400 && e.status < 500 ? e.status : 400;
    const message =
      e.type === "entity.too.large"
        ? `body larger than ${opts.bodyLimitBytes} bytes`
        : (e.message ?? "bad request");
    opts.log.warn("request rejected", { status, error: message });
    res.status(status).json({ error: { kind: "malformed", message } });
  });

  return {
    app,
    setReady: (r) => {
      ready = r;
    },
    drained: () =>
      inflight.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve)),
    abortAll: (reason) => {
      for (const c of inflight) c.abort(new Error(reason));
    },
  };
}

async function withTimeout<T>(work: Promise<T>, ms: number, controller: AbortController): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort(new Error("request timed out"));
      reject(new FunctionError("transient", `handler did not finish within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const elapsed = (since: number) => Math.round((performance.now() - since) * 10) / 10;

function causeOf(err: Error): string | undefined {
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? cause.message : cause === undefined ? undefined : String(cause);
}
