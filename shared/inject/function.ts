// Builds an inject-* function from a target: events about its kind inject one object; a change of the
// published bundle re-injects every annotated object of the kind at once.
import { definerFor } from "../runtime/define.ts";
import type { EventSourceRef } from "../runtime/event-senders.ts";
import type { KubeAccess } from "../kube/client.ts";
import { z } from "zod";
import { apiServerEvent, pingEvent } from "../events/knative.ts";
import { caLocationFrom, caStoreConfigShape } from "../ca-store/layout.ts";
import { forbidden, transient } from "../runtime/errors.ts";
import { isBundleConfigMap, readPublishedBundle } from "./bundle-source.ts";
import { injectAll, injectOne } from "./injector.ts";
import type { InjectionTarget } from "./targets.ts";
import { workMetrics } from "../runtime/work-metrics.ts";

const defineFunction = definerFor<KubeAccess>();

/** The whole inject-* function: its name, the kinds it manages, and the sources that deliver to it (infra/base/sources/). */
export function injectorFunction(name: string, targets: InjectionTarget[], sources: EventSourceRef[]) {
  const kinds = [
    ...targets.map((t) => ({ apiVersion: t.apiVersion, kind: t.kind })),
    { apiVersion: "v1", kind: "ConfigMap" },
  ];
  return defineFunction({
    name,
    sources,
    description: `injects the service CA bundle into annotated ${targets.map((t) => t.kind).join(" and ")} objects`,
    config: { ...caStoreConfigShape },
    event: z.union([pingEvent, apiServerEvent(kinds)]),
    init: ({ config, kube, clock, log, metrics }) => ({
      kube: kube(),
      metrics: workMetrics(metrics),
      clock,
      log,
      component: `service-ca-functions/${name}`,
      where: caLocationFrom(config),
    }),
    async handle(event, { state, log }) {
      const deps = { ...state, log };
      // A ping (the periodic repair) or a change of the bundle itself: bring every annotated object up to date.
      if (event.source === "ping" || isBundleConfigMap(state.where, event.ref)) {
        if (event.source === "apiserver" && event.action === "delete") return { outcome: "bundle-deleted" };
        const bundle = await readPublishedBundle(state.kube, state.where);
        const results = [];
        for (const t of targets) results.push({ kind: t.kind, ...(await injectAll(deps, t, bundle)) });
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
      const bundle = await readPublishedBundle(state.kube, state.where);
      return { outcome: await injectOne(deps, target, event.ref, bundle) };
    },
  });
}
