// Finding the Services that ask for a given Secret.
import type * as k8s from "@kubernetes/client-node";
import type { Kube } from "../kube/client.ts";
import { pagesOf, readObject } from "../kube/core.ts";
import { listAll } from "../kube/pages.ts";
import { annotations } from "../names.ts";
import { requestedSecretName } from "./annotations.ts";

/**
 * A Secret of ours names its Service, so a change to it costs two GETs; only a Secret that names no Service
 * asking for it (a deleted one, a foreign one) costs a list of the namespace's Services. Listing for every
 * Secret event made a burst of N Services cost N lists of N Services.
 */
export async function servicesUsingSecret(
  kube: Kube,
  namespace: string,
  secretName: string,
  /** the Secret as the caller just read it (absent: gone), so it is not read twice */
  read?: { secret: k8s.V1Secret | undefined },
): Promise<string[]> {
  const secret = read ? read.secret : await readObject(kube, "Secret", namespace, secretName);
  const origin = secret?.metadata?.annotations?.[annotations.originName];
  if (origin) {
    const svc = await readObject(kube, "Service", namespace, origin);
    if (svc && requestedSecretName(svc) === secretName) return [origin];
  }
  // One page: no limit, as the namespace's Services were always listed.
  const services = await listAll(`Services in ${namespace}`, pagesOf(kube, "Service", { namespace }));
  return services.filter((s) => requestedSecretName(s) === secretName).map((s) => s.metadata!.name!);
}
