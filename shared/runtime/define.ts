// What a function is: a name, its config, the events it accepts, and a handler. Nothing else.
import type { z } from "zod";
import type { ConfigShape } from "./config.ts";
import type { Logger } from "./logger.ts";
import type { Kube } from "../kube/client.ts";
import type { Clock } from "./clock.ts";
import type { IncomingHttpHeaders } from "node:http";
import type { Registry } from "prom-client";
import type { EventSourceRef } from "./event-senders.ts";

export interface InitContext<Config> {
  config: Config;
  log: Logger;
  clock: Clock;
  /** Built on first use, so a function that never calls the API server never needs credentials. */
  kube: () => Kube;
  /** The function's Prometheus registry, served on GET /metrics. */
  metrics: Registry;
}

export interface CloudEventInfo {
  id: string;
  type: string;
  source: string;
  subject?: string;
  /**
   * The sender asked to be answered once the event is accepted rather than once it is handled (the CloudEvent
   * extension `respondasync: "true"`, set on a source with `spec.ceOverrides`, as HTTP's `Prefer: respond-async`).
   * Knative's ApiServerSource adapter sends one event at a time and waits for each answer; a function that
   * queues such an event lets the adapter move on to the next tenant's.
   */
  respondAsync: boolean;
}

export interface HandlerContext<State> {
  state: State;
  log: Logger;
  clock: Clock;
  cloudevent: CloudEventInfo;
  /** Aborted when the request times out or the process shuts down. */
  signal: AbortSignal;
}

/** A JSON summary of what the handler did, returned to the caller with a 200. */
export type HandlerResult = Record<string, unknown> | void;

export interface FunctionDefinition<Shape extends ConfigShape, Event, State> {
  name: string;
  description: string;
  config: Shape;
  /**
   * The Knative sources that deliver to it (as infra/ names them): their OIDC identities are the only senders it
   * accepts unless EVENT_SENDERS says otherwise. Without any, the host refuses to start until EVENT_SENDERS is set.
   */
  sources?: EventSourceRef[];
  /** Applied to `{ type, source, subject, data, ... }` of every CloudEvent; a failure is a 400. */
  event: z.ZodType<Event, unknown>;
  init(ctx: InitContext<z.infer<z.ZodObject<Shape>>>): Promise<State> | State;
  handle(event: Event, ctx: HandlerContext<State>): Promise<HandlerResult>;
  /** Plain HTTP endpoints besides the CloudEvent one (for example an admin action). */
  routes?: Array<HttpRoute<State, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Once the function is serving: background work that should not slow its start (e.g. filling a key pool). */
  started?(state: State): void;
  shutdown?(state: State): Promise<void> | void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyFunctionDefinition = FunctionDefinition<ConfigShape, any, any>;

export function defineFunction<Shape extends ConfigShape, Event, State>(
  def: FunctionDefinition<Shape, Event, State>,
): FunctionDefinition<Shape, Event, State> {
  return def;
}

export interface RouteContext<State> {
  state: State;
  log: Logger;
  clock: Clock;
  headers: IncomingHttpHeaders;
  signal: AbortSignal;
}

export interface HttpRoute<State, Body> {
  method: "POST" | "GET";
  path: string;
  /** The JSON body (POST); a failure is a 400. */
  body: z.ZodType<Body, unknown>;
  handle(body: Body, ctx: RouteContext<State>): Promise<HandlerResult>;
}
