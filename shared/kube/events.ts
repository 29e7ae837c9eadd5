// Kubernetes Events: what users see in `kubectl describe` and `kubectl get events`.
//
// The same Event said again (an hourly sweep meeting the same foreign Secret, a redelivered event) is counted on
// one Event, as client-go's recorder does, instead of adding a new one each time. Unlike client-go the Event's name
// is derived from what it says, so replicas and restarted processes count on the same Event too.
import { createHash } from "node:crypto";
import type * as k8s from "@kubernetes/client-node";
import { isConflict, isNotFound, type Kube } from "./client.ts";
import { MERGE_PATCH, patchObject } from "./objects.ts";
import { collectionPath, objectPath } from "./paths.ts";
import type { Logger } from "../runtime/logger.ts";

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

export interface EventOptions {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  component: string;
  now: Date;
}

const eventsIn = (namespace: string) => ({ apiVersion: "v1", kind: "Event", namespace });

const MAX_MESSAGE = 1024;
const MAX_NAME = 253;
/** Counts this process last wrote, by Event name; bounded like client-go's cache (4096). */
const REMEMBERED = 4096;

/** The Event's name: the object's name and a digest of everything that makes two Events "the same". */
export function eventName(target: EventTarget, opts: Omit<EventOptions, "now">): string {
  const digest = createHash("sha256")
    .update(
      JSON.stringify([
        target.apiVersion,
        target.kind,
        target.namespace,
        target.name,
        target.uid ?? "",
        opts.component,
        opts.type,
        opts.reason,
        opts.message.slice(0, MAX_MESSAGE),
      ]),
    )
    .digest("hex")
    .slice(0, 16);
  const prefix = target.name.slice(0, MAX_NAME - digest.length - 1).replace(/[.-]+$/, "");
  return `${prefix}.${digest}`;
}

export class EventRecorder {
  private readonly counts = new Map<string, number>();

  /** Records an Event, or counts it again on the Event already saying it; failing is logged, never fatal. */
  async record(kube: Kube, log: Logger, target: EventTarget, opts: EventOptions): Promise<void> {
    const name = eventName(target, opts);
    try {
      const known = this.counts.get(name);
      const count =
        known !== undefined
          ? ((await this.countAgain(kube, target.namespace, name, known + 1, opts.now)) ??
            (await this.create(kube, target, name, opts)))
          : await this.create(kube, target, name, opts);
      this.remember(name, count);
    } catch (err) {
      log.warn("could not record event", {
        reason: opts.reason,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  /** Creates the Event; if it exists (said by another process, or before a restart), counts it again. */
  private async create(kube: Kube, target: EventTarget, name: string, opts: EventOptions): Promise<number> {
    const event: k8s.CoreV1Event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace: target.namespace },
      involvedObject: { ...target },
      type: opts.type,
      reason: opts.reason,
      message: opts.message.slice(0, MAX_MESSAGE),
      source: { component: opts.component },
      reportingComponent: opts.component,
      reportingInstance: opts.component,
      firstTimestamp: opts.now,
      lastTimestamp: opts.now,
      count: 1,
    };
    try {
      await kube.rest({ method: "POST", path: collectionPath(eventsIn(target.namespace)), body: event });
      return 1;
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
    const existing = await kube.rest<k8s.CoreV1Event>({
      method: "GET",
      path: objectPath(eventsIn(target.namespace), name),
    });
    const count = (existing.count ?? 1) + 1;
    await this.countAgain(kube, target.namespace, name, count, opts.now);
    return count;
  }

  /** Sets the count and last time on an existing Event; `undefined` if it is gone (Events expire). */
  private async countAgain(
    kube: Kube,
    namespace: string,
    name: string,
    count: number,
    now: Date,
  ): Promise<number | undefined> {
    try {
      const counted = {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace },
        count,
        lastTimestamp: now,
      };
      await patchObject(kube, counted, MERGE_PATCH);
      return count;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private remember(name: string, count: number): void {
    this.counts.delete(name);
    this.counts.set(name, count);
    if (this.counts.size > REMEMBERED) this.counts.delete(this.counts.keys().next().value!);
  }
}

const processRecorder = new EventRecorder();

/** Records an Event through this process's recorder; failing to record one is logged, never fatal. */
export function recordEvent(kube: Kube, log: Logger, target: EventTarget, opts: EventOptions): Promise<void> {
  return processRecorder.record(kube, log, target, opts);
}
