// What a function is: a name, its config, the events it accepts, and a handler. Nothing else.
import type * as z from "zod";
import type { ConfigShape } from "./config.ts";
import type { Logger } from "./logger.ts";
import type { Clock } from "./clock.ts";
import type { IncomingHttpHeaders } from "node:http";
import type { Registry } from "prom-client";
import type { EventSourceRef } from "./event-senders.ts";

/** What init gets: its config, log, clock and metrics, and whatever the host wires in (`Services`). */
export type InitContext<Config, Services extends object = object> = Services & {
  config: Config;
  log: Logger;
  clock: Clock;
  /** The function's Prometheus registry, served on GET /metrics. */
  metrics: Registry;
};

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

export interface FunctionDefinition<
  Shape extends ConfigShape,
  Event,
  State,
  Services extends object = object,
> {
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
  init(ctx: InitContext<z.infer<z.ZodObject<Shape>>, Services>): Promise<State> | State;
  handle(event: Event, ctx: HandlerContext<State>): Promise<HandlerResult>;
  /** Plain HTTP endpoints besides the CloudEvent one (for example an admin action). */
  routes?: Array<HttpRoute<State, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Once the function is serving: background work that should not slow its start (e.g. filling a key pool). */
  started?(state: State): void;
  shutdown?(state: State): Promise<void> | void;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- any event and state: what the host serves generically */
export type AnyFunctionDefinition<Services extends object = any> = FunctionDefinition<
  ConfigShape,
  any,
  any,
  Services
>;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** `defineFunction` for functions whose init also gets `Services` (the host's wiring decides what they are). */
export const definerFor =
  <Services extends object>() =>
  <Shape extends ConfigShape, Event, State>(
    def: FunctionDefinition<Shape, Event, State, Services>,
  ): FunctionDefinition<Shape, Event, State, Services> =>
    def;

export const defineFunction = definerFor<object>();

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
