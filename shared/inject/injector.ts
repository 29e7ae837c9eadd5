// The one injection loop: re-read the object, compare, and write the bundle only where it differs.
import type { Kube } from "../kube/client.ts";
import { apply, listAny, patchAs, readAny, readOptional } from "../kube/objects.ts";
import { forEachPage } from "../kube/pages.ts";
import { recordEvent } from "../kube/events.ts";
import type { Clock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/logger.ts";
import type { InjectionMetrics } from "./metrics.ts";
import { mapLimit } from "../runtime/concurrency.ts";
import { wantsInjection } from "./annotations.ts";
import { INJECTOR_FIELD_MANAGER } from "../names.ts";
import type { AnyObject, InjectionTarget } from "./targets.ts";

export interface InjectorDeps {
  kube: Kube;
  clock: Clock;
  log: Logger;
  component: string;
  metrics?: InjectionMetrics;
}

export type InjectOutcome = "gone" | "not-annotated" | "not-applicable" | "current" | "injected";

export interface ObjectName {
  name: string;
  namespace?: string;
}

const keyOf = (t: InjectionTarget, ref: ObjectName) => ({
  apiVersion: t.apiVersion,
  kind: t.kind,
  metadata: { name: ref.name, ...(t.namespaced && ref.namespace ? { namespace: ref.namespace } : {}) },
});

const label = (t: InjectionTarget, ref: ObjectName) =>
  `${t.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`;

/** Why an event's own copy of an object (Resource mode) needs nothing, if it says so. */
export const COPY_REASON = "the event's own copy needs nothing";

/**
 * What an event's own copy of an object says without a request: not annotated, or already holding `knownBundle`.
 * Every version of an object comes with its own event, so a copy that needs nothing is settled for that version,
 * and a later version that needs something is judged when its event comes (the ping repairs a lost one); anything
 * else (including a kind's "not applicable", which records an Event) is read first.
 */
export function judgeCopy(
  target: InjectionTarget,
  copy: AnyObject,
  knownBundle: string | undefined,
): "not-annotated" | "current" | undefined {
  if (!wantsInjection(copy.metadata?.annotations, target.readsAlphaAnnotation)) return "not-annotated";
  if (knownBundle === undefined || target.notApplicable?.(copy)) return undefined;
  return holdsBundle(target, copy, knownBundle) ? "current" : undefined;
}

/** Whether every field the kind manages holds `bundlePem` (then nothing is written). */
export const holdsBundle = (target: InjectionTarget, obj: AnyObject, bundlePem: string) =>
  target.currentBundles(obj).every((b) => b === bundlePem);

/**
 * Reads the object and the bundle at once (neither waits for the other: one round trip instead of two on the
 * path of every annotation), then decides and writes.
 */
export async function injectOne(
  deps: InjectorDeps,
  target: InjectionTarget,
  ref: ObjectName,
  readBundle: () => Promise<string>,
): Promise<InjectOutcome> {
  const [obj, bundlePem] = await Promise.all([
    readAny<AnyObject>(deps.kube, label(target, ref), keyOf(target, ref)),
    readBundle(),
  ]);
  if (!obj) return "gone";
  return injectInto(deps, target, obj, bundlePem);
}

/** Decides and writes for an object already read (by `injectOne` or from a list). */
export async function injectInto(
  deps: InjectorDeps,
  target: InjectionTarget,
  obj: AnyObject,
  bundlePem: string,
): Promise<InjectOutcome> {
  const ref: ObjectName = { name: obj.metadata.name, namespace: obj.metadata.namespace };
  if (!wantsInjection(obj.metadata?.annotations, target.readsAlphaAnnotation)) return "not-annotated";
  const why = target.notApplicable?.(obj);
  if (why) {
    deps.log.info("nothing to inject", { object: label(target, ref), reason: why });
    if (obj.metadata.namespace) {
      await recordEvent(
        deps.kube,
        deps.log,
        { apiVersion: target.apiVersion, kind: target.kind, ...ref, namespace: obj.metadata.namespace },
        {
          type: "Normal",
          reason: "CABundleNotApplicable",
          message: why,
          component: deps.component,
          now: deps.clock.now(),
        },
      );
    }
    return "not-applicable";
  }
  if (holdsBundle(target, obj, bundlePem)) {
    deps.metrics?.writeSkipped(target.kind);
    return "current";
  }

  const patch = target.patch(obj, bundlePem);
  const body = { ...keyOf(target, ref), ...patch.body };
  if (patch.strategy === "apply") {
    await apply(deps.kube, body, INJECTOR_FIELD_MANAGER);
  } else {
    await patchAs(deps.kube, `inject ${label(target, ref)}`, body, patch.strategy, INJECTOR_FIELD_MANAGER);
  }
  deps.metrics?.injected(target.kind);
  deps.log.info("injected CA bundle", { object: label(target, ref) });
  return "injected";
}

export interface FanOutResult {
  examined: number;
  injected: number;
  current: number;
  failed: number;
}

/** Every annotated object of the kind, page by page; one failure does not stop the rest. */
export async function injectAll(
  deps: InjectorDeps,
  target: InjectionTarget,
  bundlePem: string,
): Promise<FanOutResult> {
  const result: FanOutResult = { examined: 0, injected: 0, current: 0, failed: 0 };
  // A kind that is not served (no aggregator, say) reads as an empty list.
  const page = async (cont?: string) =>
    (await readOptional(`list ${target.kind}`, () =>
      listAny<AnyObject>(deps.kube, target.apiVersion, target.kind, 500, cont),
    )) ?? { items: [] };
  await forEachPage(target.kind, page, async (items) => {
    const annotated = items.filter((o) =>
      wantsInjection(o.metadata?.annotations, target.readsAlphaAnnotation),
    );
    result.examined += annotated.length;
    const outcomes = await mapLimit(annotated, 32, async (o) => {
      try {
        return await injectInto(
          deps,
          target,
          { ...o, apiVersion: target.apiVersion, kind: target.kind },
          bundlePem,
        );
      } catch (err) {
        deps.log.warn("injection failed", {
          object: label(target, o.metadata),
          error: err instanceof Error ? err.message : String(err),
        });
        return "failed" as const;
      }
    });
    for (const o of outcomes) {
      if (o === "injected") result.injected++;
      else if (o === "current") result.current++;
      else if (o === "failed") result.failed++;
    }
  });
  return result;
}

/** Every annotated object of each kind in turn, by kind. */
export async function injectKinds(
  deps: InjectorDeps,
  targets: InjectionTarget[],
  bundlePem: string,
): Promise<Record<string, FanOutResult>> {
  const results: Record<string, FanOutResult> = {};
  for (const t of targets) results[t.kind] = await injectAll(deps, t, bundlePem);
  return results;
}
