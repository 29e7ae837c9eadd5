// The periodic repair: every annotated Service in the cluster, page by page, through the same reconcile.
import { classifyKubeError } from "../kube/client.ts";
import { mapLimit } from "../runtime/concurrency.ts";
import { requestedSecretName } from "./annotations.ts";
import { reconcileService, type Outcome, type ServingCertDeps } from "./reconcile.ts";

export interface ScanResult {
  services: number;
  annotated: number;
  outcomes: Partial<Record<Outcome | "failed", number>>;
}

export async function scanServices(deps: ServingCertDeps, concurrency = 8): Promise<ScanResult> {
  const result: ScanResult = { services: 0, annotated: 0, outcomes: {} };
  let cont: string | undefined;
  do {
    let page;
    try {
      page = await deps.kube.core.listServiceForAllNamespaces({ limit: 500, _continue: cont });
    } catch (err) {
      throw classifyKubeError(err, "list Services");
    }
    result.services += page.items.length;
    const annotated = page.items.filter((s) => requestedSecretName(s));
    result.annotated += annotated.length;
    const outcomes = await mapLimit(annotated, concurrency, async (svc) => {
      try {
        const r = await reconcileService(deps, svc.metadata!.namespace!, svc.metadata!.name!, {
          countRepeatedFailure: true,
        });
        return r.outcome;
      } catch (err) {
        deps.log.warn("scan could not reconcile a Service", {
          service: `${svc.metadata!.namespace}/${svc.metadata!.name}`,
          error: err instanceof Error ? err.message : String(err),
        });
        return "failed" as const;
      }
    });
    for (const o of outcomes) result.outcomes[o] = (result.outcomes[o] ?? 0) + 1;
    cont = page.metadata?._continue || undefined;
  } while (cont);
  return result;
}
