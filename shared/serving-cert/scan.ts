// The periodic repair: every annotated Service in the cluster, judged from list pages (Services, and our own
// Secrets by label) a namespace at a time, and only what needs a change goes through the full re-read-and-write
// reconcile.
import type * as k8s from "@kubernetes/client-node";
import { itemsOf, Lookahead } from "../kube/pages.ts";
import { pagesOf } from "../kube/core.ts";
import { mapLimit } from "../runtime/concurrency.ts";
import { MANAGED_BY_LABEL } from "../names.ts";
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

/**
 * Only what judging needs: at 10,000 Services, the full objects (managed fields above all) would be most of the
 * scan's memory.
 */
const slim = (svc: k8s.V1Service): k8s.V1Service => ({
  metadata: {
    name: svc.metadata?.name,
    namespace: svc.metadata?.namespace,
    uid: svc.metadata?.uid,
    resourceVersion: svc.metadata?.resourceVersion,
    annotations: svc.metadata?.annotations,
  },
  spec: { clusterIP: svc.spec?.clusterIP },
});

/**
 * Where a namespace's objects come in a list: the API server lists in key order (`<namespace>/<name>`), so
 * namespace "a-b" comes before "a" ('-' sorts before '/'). Only memory rests on this: a Secret taken for an
 * earlier namespace than it is makes its Service's check read it again, never a wrong write.
 */
const listOrder = (obj: { metadata?: { namespace?: string } }) => `${obj.metadata?.namespace ?? ""}/`;

/** A Service and the Secret of ours it names, as listed (none: missing, or a foreign Secret of that name). */
export type Pair = readonly [k8s.V1Service, k8s.V1Secret | undefined];

/**
 * Services and Secrets, both in list order, joined a namespace at a time: each annotated Service once, with its
 * Secret when the Secrets' list had it in the same namespace. Input out of order costs only a Secret not found
 * (the check then reads it), never a Service missed.
 */
export async function* byNamespace(
  serviceList: AsyncIterator<k8s.V1Service>,
  secretList: AsyncIterator<k8s.V1Secret>,
): AsyncGenerator<{ services: number; pairs: Pair[] }> {
  const services = new Lookahead(serviceList);
  const secrets = new Lookahead(secretList);
  for (let first = await services.peek(); first; first = await services.peek()) {
    const namespace = listOrder(first);
    let count = 0;
    const wanting = new Map<string, k8s.V1Service[]>(); // two Services may name one Secret: one of them loses
    for (
      let svc: k8s.V1Service | undefined = first;
      svc && listOrder(svc) === namespace;
      svc = await services.peek()
    ) {
      await services.take();
      count++;
      const secretName = requestedSecretName(svc);
      if (secretName) wanting.set(secretName, [...(wanting.get(secretName) ?? []), slim(svc)]);
    }
    const listed = new Map<string, k8s.V1Secret>();
    if (wanting.size > 0)
      for (
        let secret = await secrets.peek();
        secret && listOrder(secret) <= namespace;
        secret = await secrets.peek()
      ) {
        await secrets.take();
        if (listOrder(secret) === namespace && wanting.has(secret.metadata!.name!))
          listed.set(secret.metadata!.name!, secret);
      }
    yield {
      services: count,
      pairs: [...wanting].flatMap(([name, svcs]) => svcs.map((svc): Pair => [svc, listed.get(name)])),
    };
  }
}

export async function scanServices(deps: ServingCertDeps, concurrency = 8): Promise<ScanResult> {
  const result: ScanResult = { services: 0, annotated: 0, pages: 0, outcomes: {} };
  const material = await deps.ca.signingMaterial();
  const now = deps.clock.now();
  const tally = (o: Outcome | "failed") => (result.outcomes[o] = (result.outcomes[o] ?? 0) + 1);
  const page = () => void result.pages++;

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

  // Services and our Secrets (by label) are listed side by side, a page at a time, and judged one namespace at a
  // time: what is held is one namespace's annotated Services, not the cluster's.
  const services = itemsOf("Services", pagesOf(deps.kube, "Service", { limit: PAGE }), page);
  const secrets = itemsOf(
    "serving Secrets",
    pagesOf(deps.kube, "Secret", { labelSelector: managedBy, limit: PAGE }),
    page,
  );
  for await (const joined of byNamespace(services, secrets)) {
    result.services += joined.services;
    result.annotated += joined.pairs.length;
    await mapLimit(joined.pairs, concurrency, ([svc, secret]) => check(svc, secret));
  }
  return result;
}
