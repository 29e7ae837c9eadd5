// The published CA bundle, read from the ConfigMap the store writes: readers (injectors, distribution, the scan)
// never need (or get) the CA key.
import type { Kube } from "../kube/client.ts";
import { readObject } from "../kube/core.ts";
import type { CaLocation } from "./layout.ts";
import { dataKeys } from "../names.ts";
import { transient } from "../runtime/errors.ts";

export async function readPublishedBundle(kube: Kube, where: CaLocation): Promise<string> {
  const { namespace, bundleConfigMapName: name } = where;
  const cm = await readObject(kube, "ConfigMap", namespace, name);
  const pem = cm?.data?.[dataKeys.caBundle];
  // Retryable: the CA is created by the first signer to run, which may simply not have run yet.
  if (!pem) throw transient(`the CA bundle is not published yet (ConfigMap ${namespace}/${name})`);
  return pem;
}

export const isBundleConfigMap = (
  where: CaLocation,
  ref: { kind: string; namespace?: string; name: string },
) => ref.kind === "ConfigMap" && ref.namespace === where.namespace && ref.name === where.bundleConfigMapName;
