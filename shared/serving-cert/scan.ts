// The periodic repair: every annotated Service in the cluster, judged from list pages (Services, and our own
// Secrets by label), and only what needs a change goes through the full re-read-and-write reconcile.
import type * as k8s from "@kubernetes/client-node";
import { forEachPage } from "../kube/pages.ts";
import { pagesOf } from "../kube/core.ts";
import { mapLimit } from "../runtime/concurrency.ts";
import { MANAGED_BY_LABEL, annotations } from "../names.ts";
import { requestedSecretName } from "./annotations.ts";
import { recheckDue } from "./failures.ts";
import {
  judge,
  reconcileService,
  serviceMarkedCurrent,
  type Outcome,
  type ServingCertDeps,
} from "./reconcile.ts";

export interface ScanResult {
  services: number;
  annotated: number;
  /** list requests made (pages), the scan's whole read cost when nothing needs repair */
  pages: number;
  outcomes: Partial<Record<Outcome | "failed", number>>;
}

const PAGE = 500;
const managedBy = Object.entries(MANAGED_BY_LABEL)
  .map(([k, v]) => `${k}=${v}`)
  .join(",");

const OUR_ANNOTATIONS = new Set<string>(Object.values(annotations));

/**
 * Only what judging reads, kept for every annotated Service until its Secret's page comes: at 10,000 Services the
 * full objects (managed fields above all) would be most of the scan's memory, and at 100,000 anything more than
 * this (a user's own annotations, an array per Secret name) pushes the live set past the heap's limit.
 */
function slim(svc: k8s.V1Service): k8s.V1Service {
  const ours: Record<string, string> = {};
  for (const [k, v] of Object.entries(svc.metadata?.annotations ?? {}))
    if (OUR_ANNOTATIONS.has(k)) ours[k] = v;
  return {
    metadata: {
      name: svc.metadata?.name,
      namespace: svc.metadata?.namespace,
      uid: svc.metadata?.uid,
      resourceVersion: svc.metadata?.resourceVersion,
      annotations: ours,
    },
    spec: { clusterIP: svc.spec?.clusterIP },
  };
}

export async function scanServices(deps: ServingCertDeps, concurrency = 8): Promise<ScanResult> {
  const result: ScanResult = { services: 0, annotated: 0, pages: 0, outcomes: {} };
  const material = await deps.ca.signingMaterial();
  const now = deps.clock.now();
  const tally = (o: Outcome | "failed") => (result.outcomes[o] = (result.outcomes[o] ?? 0) + 1);

  // Annotated Services by the Secret they ask for; the others are dropped page by page. Two Services may name one
  // Secret (one of them loses): only then is the entry an array.
  const wanting = new Map<string, k8s.V1Service | k8s.V1Service[]>();
  const take = (key: string): k8s.V1Service[] => {
    const found = wanting.get(key);
    wanting.delete(key);
    return found === undefined ? [] : Array.isArray(found) ? found : [found];
  };
  result.pages += await forEachPage("Services", pagesOf(deps.kube, "Service", { limit: PAGE }), (items) => {
    result.services += items.length;
    for (const svc of items) {
      const secretName = requestedSecretName(svc);
      if (!secretName) continue;
      const key = `${svc.metadata!.namespace}/${secretName}`;
      const already = wanting.get(key);
      wanting.set(key, already === undefined ? slim(svc) : [...take(key), slim(svc)]);
      result.annotated++;
    }
  });

  const check = async (svc: k8s.V1Service, listed: k8s.V1Secret | undefined) => {
    const ns = svc.metadata!.namespace!;
    try {
      const verdict = await judge(svc, listed, material, {
        now,
        refreshFraction: deps.refreshFraction,
        singleLabelNames: deps.singleLabelNames,
      });
      if (verdict.kind === "current" && serviceMarkedCurrent(svc, material)) return tally("current");
      // Given up on: looked at again only when its re-check is due (backoff), so pings cannot make it cost more.
      if (verdict.kind === "gave-up" && !recheckDue(svc, now)) return tally("gave-up");
      // Something to do (or a Secret the label did not find): the full reconcile re-reads before writing. A cause
      // already recorded on the Service is not counted again, however many scans see it.
      tally((await reconcileService(deps, ns, svc.metadata!.name!, { recheckGivenUp: true })).outcome);
    } catch (err) {
      deps.log.warn("scan could not reconcile a Service", {
        service: `${ns}/${svc.metadata!.name}`,
        error: err instanceof Error ? err.message : String(err),
      });
      tally("failed");
    }
  };

  // Our Secrets, a page at a time, each judged beside the Service that asked for it.
  result.pages += await forEachPage(
    "serving Secrets",
    pagesOf(deps.kube, "Secret", { labelSelector: managedBy, limit: PAGE }),
    async (items) => {
      const pairs = items.flatMap((secret) => {
        const key = `${secret.metadata!.namespace}/${secret.metadata!.name}`;
        return take(key).map((svc) => [svc, secret] as const);
      });
      await mapLimit(pairs, concurrency, ([svc, secret]) => check(svc, secret));
    },
  );
  // Annotated Services with no Secret of ours: missing, or a foreign Secret of that name.
  await mapLimit([...wanting.keys()].flatMap(take), concurrency, (svc) => check(svc, undefined));
  return result;
}
