// The periodic repair: every annotated Service in the cluster, judged from list pages (Services, and our own
// Secrets by label), and only what needs a change goes through the full re-read-and-write reconcile.
import type * as k8s from "@kubernetes/client-node";
import { classifyKubeError } from "../kube/client.ts";
import { mapLimit } from "../runtime/concurrency.ts";
import { MANAGED_BY_LABEL } from "../ca-store/layout.ts";
import { requestedSecretName } from "./annotations.ts";
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

async function listAll<T extends k8s.KubernetesObject>(
  what: string,
  page: (cont?: string) => Promise<k8s.KubernetesListObject<T>>,
  count: () => void,
) {
  const items: T[] = [];
  let cont: string | undefined;
  do {
    let list;
    try {
      list = await page(cont);
    } catch (err) {
      throw classifyKubeError(err, `list ${what}`);
    }
    count();
    items.push(...list.items);
    cont = list.metadata?._continue || undefined;
  } while (cont);
  return items;
}

export async function scanServices(deps: ServingCertDeps, concurrency = 8): Promise<ScanResult> {
  const result: ScanResult = { services: 0, annotated: 0, pages: 0, outcomes: {} };
  const count = () => void result.pages++;
  const material = await deps.ca.signingMaterial();
  const services = await listAll(
    "Services",
    (cont) => deps.kube.core.listServiceForAllNamespaces({ limit: PAGE, _continue: cont }),
    count,
  );
  const secrets = new Map<string, k8s.V1Secret>();
  for (const s of await listAll(
    "serving Secrets",
    (cont) =>
      deps.kube.core.listSecretForAllNamespaces({ labelSelector: managedBy, limit: PAGE, _continue: cont }),
    count,
  )) {
    secrets.set(`${s.metadata!.namespace}/${s.metadata!.name}`, s);
  }
  result.services = services.length;
  const annotated = services.filter((s) => requestedSecretName(s));
  result.annotated = annotated.length;
  const now = deps.clock.now();
  const outcomes = await mapLimit(annotated, concurrency, async (svc): Promise<Outcome | "failed"> => {
    const ns = svc.metadata!.namespace!;
    const listed = secrets.get(`${ns}/${requestedSecretName(svc)}`);
    try {
      const verdict = await judge(svc, listed, material, now, deps.refreshFraction);
      if (verdict.kind === "current" && serviceMarkedCurrent(svc, material)) return "current";
      if (verdict.kind === "gave-up") return "gave-up";
      // Something to do (or a Secret the label did not find): the full reconcile re-reads before writing.
      return (await reconcileService(deps, ns, svc.metadata!.name!, { countRepeatedFailure: true })).outcome;
    } catch (err) {
      deps.log.warn("scan could not reconcile a Service", {
        service: `${ns}/${svc.metadata!.name}`,
        error: err instanceof Error ? err.message : String(err),
      });
      return "failed";
    }
  });
  for (const o of outcomes) result.outcomes[o] = (result.outcomes[o] ?? 0) + 1;
  return result;
}
