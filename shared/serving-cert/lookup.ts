// Finding the Services that ask for a given Secret.
import type { Kube } from "../kube/client.ts";
import { classifyKubeError } from "../kube/client.ts";
import { readOptional } from "../kube/objects.ts";
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
): Promise<string[]> {
  const secret = await readOptional(`Secret ${namespace}/${secretName}`, () =>
    kube.core.readNamespacedSecret({ namespace, name: secretName }),
  );
  const origin = secret?.metadata?.annotations?.[annotations.originName];
  if (origin) {
    const svc = await readOptional(`Service ${namespace}/${origin}`, () =>
      kube.core.readNamespacedService({ namespace, name: origin }),
    );
    if (svc && requestedSecretName(svc) === secretName) return [origin];
  }
  try {
    const list = await kube.core.listNamespacedService({ namespace });
    return list.items.filter((s) => requestedSecretName(s) === secretName).map((s) => s.metadata!.name!);
  } catch (err) {
    throw classifyKubeError(err, `list Services in ${namespace}`);
  }
}
