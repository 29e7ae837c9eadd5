// The periodic repair: every annotated Service in the cluster, judged from list pages (Services, and our own
// Secrets by label), and only what needs a change goes through the full re-read-and-write reconcile.
import type * as k8s from "@kubernetes/client-node";
import { pageReader } from "../kube/pages.ts";
import { pagesOf } from "../kube/core.ts";
import { mapLimit } from "../runtime/concurrency.ts";
import { MANAGED_BY_LABEL, annotations } from "../names.ts";
import { requestedSecretName } from "./annotations.ts";
import { recheckDue } from "./failures.ts";
import { joinByNamespace } from "./scan-join.ts";
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
  /** the most Services and Secrets the join held at once: a namespace's and a page at most, in key order */
  mostHeld: number;
  outcomes: Partial<Record<Outcome | "failed", number>>;
}

const PAGE = 500;
const managedBy = Object.entries(MANAGED_BY_LABEL)
  .map(([k, v]) => `${k}=${v}`)
  .join(",");

const OUR_ANNOTATIONS = new Set<string>(Object.values(annotations));

/**
 * Only what judging reads, kept while a Service waits for its Secret's page: the full objects (managed fields above
 * all) would be most of the scan's memory.
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
  const result: ScanResult = { services: 0, annotated: 0, pages: 0, mostHeld: 0, outcomes: {} };
  const material = await deps.ca.signingMaterial();
  const now = deps.clock.now();
  const tally = (o: Outcome | "failed") => (result.outcomes[o] = (result.outcomes[o] ?? 0) + 1);

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

  // Services and our Secrets (by label) are read side by side, a page at a time, and each annotated Service is
  // judged once its Secret's page has come (or the Secrets' list has passed its namespace without it).
  const services = pageReader("Services", pagesOf(deps.kube, "Service", { limit: PAGE }));
  const secrets = pageReader(
    "serving Secrets",
    pagesOf(deps.kube, "Secret", { labelSelector: managedBy, limit: PAGE }),
  );
  const joined = await joinByNamespace({
    services: services.next,
    secrets: secrets.next,
    namespaceOf: (svc: k8s.V1Service) => svc.metadata!.namespace!,
    want: (svc) => {
      const secretName = requestedSecretName(svc);
      return secretName ? { secretName, kept: slim(svc) } : undefined;
    },
    where: (secret: k8s.V1Secret) => ({
      namespace: secret.metadata!.namespace!,
      name: secret.metadata!.name!,
    }),
    judge: (pairs) =>
      mapLimit(pairs, concurrency, ([svc, secret]) => check(svc, secret)).then(() => undefined),
  });
  if (!joined.inOrder)
    deps.log.warn(
      "the lists came out of the API server's key order: Services were checked without their Secrets",
      {
        mostHeld: joined.mostHeld,
      },
    );
  result.services = joined.services;
  result.annotated = joined.annotated;
  result.mostHeld = joined.mostHeld;
  result.pages = services.pages + secrets.pages;
  return result;
}
