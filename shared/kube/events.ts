// Kubernetes Events: what users see in `kubectl describe` and `kubectl get events`.
import type * as k8s from "@kubernetes/client-node";
import type { Kube } from "./client.ts";
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

/** Records an Event; failing to record one is logged, never fatal to the work it describes. */
export async function recordEvent(
  kube: Kube,
  log: Logger,
  target: EventTarget,
  opts: EventOptions,
): Promise<void> {
  const event: k8s.CoreV1Event = {
    metadata: { generateName: `${target.name}.`, namespace: target.namespace },
    involvedObject: { ...target },
    type: opts.type,
    reason: opts.reason,
    message: opts.message.slice(0, 1024),
    source: { component: opts.component },
    reportingComponent: opts.component,
    reportingInstance: opts.component,
    firstTimestamp: opts.now,
    lastTimestamp: opts.now,
    count: 1,
  };
  try {
    await kube.core.createNamespacedEvent({ namespace: target.namespace, body: event });
  } catch (err) {
    log.warn("could not record event", {
      reason: opts.reason,
      error: err instanceof Error ? err.message : String(err),
    });
  }
}
