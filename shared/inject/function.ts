// Builds an inject-* function from a target: events about its kind inject one object; a change of the
// published bundle re-injects every annotated object of the kind at once.
import { definerFor } from "../runtime/define.ts";
import type { EventSourceRef } from "../runtime/event-senders.ts";
import type { KubeAccess } from "../kube/client.ts";
import * as z from "zod";
import { apiServerEvent, pingEvent } from "../events/knative.ts";
import { caLocationFrom, caStoreConfigShape } from "../ca-store/layout.ts";
import { forbidden, transient } from "../runtime/errors.ts";
import { isBundleConfigMap, RecentBundle } from "../ca-store/published-bundle.ts";
import { COPY_REASON, injectKinds, injectOne, judgeCopy } from "./injector.ts";
import { injectionTargets } from "./targets.ts";
import { injectionMetrics } from "./metrics.ts";
import { eventComponent } from "../names.ts";
import { bodyLimitBytes } from "../runtime/config.ts";

const defineFunction = definerFor<KubeAccess>();

/**
 * The whole inject-* function: its name, the kinds it manages, and the ApiServerSource watching them. Its other
 * sources (infra/base/sources/) follow from the name: `ca-bundle-to-<name>` (the published bundle; not for
 * ConfigMaps, whose own source already sees the bundle ConfigMap) and the PingSource `<name>-hourly`.
 */
export function injectorFunction(name: string, managed: string[], watchedBy: string) {
  const sources: EventSourceRef[] = [
    { kind: "ApiServerSource", name: watchedBy },
    ...(managed.includes("ConfigMap")
      ? []
      : [{ kind: "ApiServerSource" as const, name: `ca-bundle-to-${name}` }]),
    { kind: "PingSource", name: `${name}-hourly` },
  ];
  const targets = managed.map((kind) => {
    const target = injectionTargets.find((t) => t.kind === kind);
    if (!target) throw new Error(`${name}: no injection target for kind ${kind}`);
    return target;
  });
  const kinds = [
    ...targets.map((t) => ({ apiVersion: t.apiVersion, kind: t.kind })),
    { apiVersion: "v1", kind: "ConfigMap" },
  ];
  return defineFunction({
    name,
    sources,
    description: `injects the service CA bundle into annotated ${targets.map((t) => t.kind).join(" and ")} objects`,
    config: {
      ...caStoreConfigShape,
      BUNDLE_CACHE_SECONDS: z.coerce
        .number()
        .min(0)
        .max(3600)
        .default(30)
        .describe(
          "how long the bundle last read judges an event's own copy of an object as current without a request (0: never); what is written always reads it again, and the bundle's event ends it sooner",
        ),
      // The ConfigMaps source sends whole objects (Resource mode): room for the largest ConfigMap the API stores.
      ...(managed.includes("ConfigMap") ? { BODY_LIMIT_BYTES: bodyLimitBytes(4 * 1024 * 1024) } : {}),
    },
    event: z.union([pingEvent, apiServerEvent(kinds)]),
    init: ({ config, kube, clock, log, metrics }) => {
      const client = kube();
      const where = caLocationFrom(config);
      return {
        kube: client,
        metrics: injectionMetrics(metrics),
        clock,
        log,
        component: eventComponent(name),
        where,
        bundle: new RecentBundle(client, where, clock, config.BUNDLE_CACHE_SECONDS * 1000),
      };
    },
    async handle(event, { state, log }) {
      const deps = { ...state, log };
      // A ping (the periodic repair) or a change of the bundle itself: bring every annotated object up to date.
      if (event.source === "ping" || isBundleConfigMap(state.where, event.ref)) {
        if (event.source === "apiserver" && event.action === "delete") return { outcome: "bundle-deleted" };
        const bundle = await state.bundle.read();
        const byKind = await injectKinds(deps, targets, bundle);
        const results = Object.entries(byKind).map(([kind, r]) => ({ kind, ...r }));
        const failed = results.reduce((n, r) => n + r.failed, 0);
        if (failed > 0) throw transient(`${failed} object(s) could not be injected; the rest are current`);
        return { outcome: "bundle-fan-out", results };
      }
      const target = targets.find((t) => t.kind === event.ref.kind);
      if (!target) {
        throw forbidden(
          `${name} manages ${targets.map((t) => t.kind).join(", ")} and reacts only to the CA bundle ConfigMap ` +
            `${state.where.namespace}/${state.where.bundleConfigMapName}, not ${event.ref.kind} ${event.ref.namespace ?? ""}/${event.ref.name}`,
        );
      }
      if (event.action === "delete") return { outcome: "gone" };
      if (event.object) {
        const said = judgeCopy(target, event.object, state.bundle.known());
        if (said === "current") state.metrics.writeSkipped(target.kind);
        if (said) return { outcome: said, reason: COPY_REASON };
      }
      return { outcome: await injectOne(deps, target, event.ref, () => state.bundle.read()) };
    },
  });
}
