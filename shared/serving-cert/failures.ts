// When a Service's failure counts, and when a Service given up on is looked at again: pure, so no event can
// spend its budget and every rule is unit-tested with a clock argument.
import { createHash } from "node:crypto";
import { annotations } from "../names.ts";
import { failureCount, MAX_FAILURES } from "./annotations.ts";

type Annotated = { metadata?: { annotations?: Record<string, string> } };

/** What stands in the way, as a short stable token: the same obstacle seen again is the same cause. */
export function causeOf(kind: string, ...details: string[]): string {
  return `${kind}/${createHash("sha256").update(JSON.stringify(details)).digest("hex").slice(0, 16)}`;
}

/**
 * Whether the Service already records this cause: then seeing it again (another event, another scan, a forged
 * ping) counts nothing and writes nothing. A Service marked before causes were recorded counts its message.
 */
export function alreadyRecorded(svc: Annotated, cause: string, message: string): boolean {
  const a = svc.metadata?.annotations ?? {};
  const recorded = a[annotations.failureCause];
  return recorded !== undefined ? recorded === cause : a[annotations.error] === message;
}

export const givenUp = (svc: Annotated): boolean => failureCount(svc) >= MAX_FAILURES;

/** The first re-check of a Service given up on comes after this long; each one that finds the cause doubles it. */
export const RECHECK_MIN_MS = 60 * 60 * 1000;
export const RECHECK_MAX_MS = 24 * 60 * 60 * 1000;

/** Whether the scan should look at a Service given up on again (no or an unreadable time: yes). */
export function recheckDue(svc: Annotated, now: Date): boolean {
  const at = Date.parse(svc.metadata?.annotations?.[annotations.recheckAfter] ?? "");
  return !Number.isFinite(at) || now.getTime() >= at;
}

/** The annotations that schedule the next re-check: twice the last interval, between the bounds. */
export function nextRecheck(svc: Annotated, now: Date): Record<string, string> {
  const last = Number(svc.metadata?.annotations?.[annotations.recheckIntervalSeconds]) * 1000;
  const interval = Number.isFinite(last) && last > 0 ? Math.min(last * 2, RECHECK_MAX_MS) : RECHECK_MIN_MS;
  return {
    [annotations.recheckAfter]: new Date(now.getTime() + interval).toISOString(),
    [annotations.recheckIntervalSeconds]: String(Math.round(interval / 1000)),
  };
}

/** Every annotation a failure leaves on a Service; a success removes them all. */
export const FAILURE_ANNOTATIONS = [
  annotations.error,
  annotations.errorNum,
  annotations.failureCause,
  annotations.recheckAfter,
  annotations.recheckIntervalSeconds,
] as const;
