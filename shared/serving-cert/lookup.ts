// Finding the Services that ask for a given Secret.
import type { Kube } from "../kube/client.ts";
import { classifyKubeError } from "../kube/client.ts";
import { requestedSecretName } from "./annotations.ts";

export async function servicesUsingSecret(
  kube: Kube,
  namespace: string,
  secretName: string,
): Promise<string[]> {
  try {
    const list = await kube.core.listNamespacedService({ namespace });
    return list.items.filter((s) => requestedSecretName(s) === secretName).map((s) => s.metadata!.name!);
  } catch (err) {
    throw classifyKubeError(err, `list Services in ${namespace}`);
  }
}
