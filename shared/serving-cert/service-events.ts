// What an event about a Service or a serving Secret does, and the queue per namespace it may wait in.
import { Gauge, type Registry } from "prom-client";
import { forbidden } from "../runtime/errors.ts";
import { KeyedLimiter, retryWithBackoff } from "../runtime/concurrency.ts";
import type { Logger } from "../runtime/logger.ts";
import { metricOnce } from "../runtime/metrics.ts";
import { reconcileService, SETTLED_REASON, type ServingCertDeps } from "./reconcile.ts";
import { annotations } from "../names.ts";
import { servicesUsingSecret } from "./lookup.ts";
import { readObject } from "../kube/core.ts";

export interface EventQueueSettings {
  /** objects of one namespace worked on at once (0: no limit) */
  maxInFlightPerNamespace: number;
  /** first delay before queued work that failed is tried again, doubling */
  retryFirstMs: number;
  /** at shutdown, how long queued work is still worked through */
  drainMs: number;
}

export interface ObjectRef {
  kind: string;
  namespace?: string;
  name: string;
}

const QUEUED_TRIES = 4;

/** The reason given for the `add` event echoing a Secret this process just created. */
export const CREATE_ECHO_REASON = "the echo of this process's own create";

export class ServingCertEvents {
  private readonly perNamespace: KeyedLimiter;
  /** The resourceVersion the newest Resource-mode event of each Service carried, until its queued work runs. */
  private readonly newestVersion = new Map<string, string>();

  constructor(
    private readonly deps: ServingCertDeps,
    private readonly settings: EventQueueSettings,
    registry: Registry,
  ) {
    this.perNamespace = new KeyedLimiter(settings.maxInFlightPerNamespace, {
      onBackgroundFailure: retryWithBackoff(settings.retryFirstMs, QUEUED_TRIES, deps.log),
    });
    const limiter = this.perNamespace;
    const name = "service_ca_queued_events";
    metricOnce(
      registry,
      name,
      (registers) =>
        new Gauge({
          name,
          help: "Events answered and waiting for their namespace's turn (one per object however many named it)",
          registers,
          collect() {
            this.set(limiter.queued);
          },
        }),
    );
  }

  /**
   * One event's work. With `respondAsync` (the source waits for this answer before it sends its next event,
   * whoever's it is) the answer comes at once and the namespace's own queue, one entry per object however many
   * events name it, holds this tenant's backlog; without it, the caller waits for the outcome.
   */
  async handle(
    ref: ObjectRef,
    action: string,
    {
      respondAsync,
      log,
      object,
    }: {
      respondAsync: boolean;
      log: Logger;
      /** the object itself, when the source sends it (Resource mode) */
      object?: { metadata?: { resourceVersion?: unknown } };
    },
  ): Promise<Record<string, unknown>> {
    const { namespace, name, kind } = ref;
    if (!namespace) throw forbidden(`${kind} ${name} has no namespace`);
    if (kind === "Service" && action === "delete") return { outcome: "service-gone" };
    // A Service at a version this process settled (the echo of its own patch) needs no request, not even a read.
    const version = object?.metadata?.resourceVersion;
    if (kind === "Service" && typeof version === "string") {
      const settled = this.settledAnswer(namespace, name, version);
      if (settled) return settled;
    }
    // The CA Secret carries our label, so the serving-secrets source sends it too; it is never a serving Secret.
    if (this.deps.ca.isCaSecret({ kind, namespace, name }))
      throw forbidden(`Secret ${namespace}/${name} is the CA's own Secret; it is no serving Secret`);
    if (kind === "Secret") {
      const now = this.deps.clock.now().getTime();
      if (action === "add" && this.deps.settled?.takeCreateEcho(namespace, name, now)) {
        this.deps.metrics?.writeSkipped("Secret");
        return { outcome: "current", reason: CREATE_ECHO_REASON };
      }
      // What comes after a delete (a re-create, by anyone) is judged in full.
      if (action === "delete") this.deps.settled?.forget("Secret", namespace, name);
    }
    // The Service is read again before anything is written, even in Resource mode: a late or reordered event's
    // copy would create a Secret for a name the Service no longer asks for, or for a Service already gone. Its
    // newest event's version is kept, though: the echo of a patch still in flight when it came is settled by the
    // time the queued work runs, and then needs no read either.
    const id = `${namespace}/${kind}/${name}`;
    if (kind === "Service") {
      if (typeof version === "string") this.newestVersion.set(id, version);
      else this.newestVersion.delete(id);
    }
    const work = async () => {
      const newest = this.newestVersion.get(id);
      this.newestVersion.delete(id);
      return (
        (newest !== undefined && this.settledAnswer(namespace, name, newest)) ||
        reconcileObject({ kind, name }, namespace, { ...this.deps, log })
      );
    };
    if (!respondAsync) return this.perNamespace.run(namespace, work);
    const queued = this.perNamespace.submit(namespace, `${kind}/${name}`, work);
    return { outcome: queued, queuedEvents: this.perNamespace.queued };
  }

  /** The answer for a Service still at a version this process settled: nothing to read or write. */
  private settledAnswer(namespace: string, name: string, version: string) {
    if (!this.deps.settled?.isSettled("Service", namespace, name, version)) return undefined;
    this.deps.metrics?.writeSkipped("Secret");
    return { outcome: "current", reason: SETTLED_REASON };
  }

  /**
   * The published bundle changed (or its source relisted): read the CA now, so no certificate is signed from a
   * copy this event has made stale; what was issued from a replaced CA is queued to be judged again.
   */
  async caBundleChanged(): Promise<Record<string, unknown>> {
    if (!this.deps.ca.currentMaterial) return { outcome: "unrelated" };
    const material = await this.deps.ca.currentMaterial();
    return { outcome: "ca-checked", ca: material.name };
  }

  /** Services issued from a CA since replaced: each judged again, through its namespace's queue. */
  recheck(stale: { namespace: string; service: string }[]): void {
    for (const { namespace, service } of stale) {
      // Settled no more: an event's work already queued for it (which this joins) must judge it in full.
      this.deps.settled?.forget("Service", namespace, service);
      this.perNamespace.submit(namespace, `Service/${service}`, () =>
        reconcileService(this.deps, namespace, service),
      );
    }
    this.deps.log.info("judging again what was issued from a CA since replaced", { services: stale.length });
  }

  /** What is queued was answered already: finish it within the drain budget; the scan repairs the rest. */
  close(): Promise<void> {
    return this.perNamespace.close(this.settings.drainMs);
  }
}

// Whatever the event's action: the queue holds one entry per object, and the reconcile re-reads it.
async function reconcileObject(
  { name, kind }: { name: string; kind: string },
  namespace: string,
  deps: ServingCertDeps,
): Promise<Record<string, unknown>> {
  if (kind === "Service")
    return { ...(await reconcileService(deps, namespace, name, { serviceEvent: true })) };
  const secret = await readObject(deps.kube, "Secret", namespace, name);
  if (deps.settled?.isSettled("Secret", namespace, name, secret?.metadata?.resourceVersion)) {
    // As this process wrote (or judged) it for the Service it names: nothing to read or write.
    deps.metrics?.writeSkipped("Secret");
    const service = secret!.metadata!.annotations?.[annotations.originName];
    return {
      outcome: "checked",
      services: [{ service, outcome: "current", secret: name, reason: SETTLED_REASON }],
    };
  }
  // A Secret changed or went away: the Services that asked for it decide what happens.
  const services = await servicesUsingSecret(deps.kube, namespace, name, { secret });
  const results = [];
  for (const svc of services)
    results.push({ service: svc, ...(await reconcileService(deps, namespace, svc)) });
  return { outcome: results.length ? "checked" : "unrelated", services: results };
}
