// The CA as the user may see it: the CA Secret if readable, else the published bundle ConfigMap.
import * as k8s from "@kubernetes/client-node";
import { decodeBundle, rotationDue, DAY_MS, type x509 } from "../shared/pki/index.ts";
import { z } from "zod";
import { caLocationFrom, caStoreConfigShape, rotationConfigShape } from "../shared/ca-store/layout.ts";
import { annotations, caKeys } from "../shared/names.ts";
import { call, tryCall, PluginError, EXIT } from "./access.ts";

/** Where the functions keep the CA with their default configuration. */
export const where = caLocationFrom(z.object(caStoreConfigShape).parse({}));
/** rotate-ca's default CA_ROTATE_MIN_REMAINING_DAYS. */
export const ROTATE_MIN_REMAINING_DAYS = z.object(rotationConfigShape).parse({}).CA_ROTATE_MIN_REMAINING_DAYS;

export interface CaView {
  source: "secret" | "configmap";
  /** the CA signing now (from the Secret; the bundle's first certificate otherwise) */
  current?: x509.X509Certificate;
  /** the CA Secret's bundle (trusted now), or the published one */
  trusted: x509.X509Certificate[];
  published: x509.X509Certificate[];
  publishedDenied?: string;
  secretDenied?: string;
  lastRotation?: { at?: string; reason?: string };
}

const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : "");

export async function readCa(kc: k8s.KubeConfig): Promise<CaView> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const { namespace, secretName, bundleConfigMapName } = where;
  const secret = await tryCall({ verb: "get", resource: "secrets", namespace, name: secretName }, () =>
    core.readNamespacedSecret({ namespace, name: secretName }),
  );
  const cm = await tryCall(
    { verb: "get", resource: "configmaps", namespace, name: bundleConfigMapName },
    () => core.readNamespacedConfigMap({ namespace, name: bundleConfigMapName }),
  );
  const published = decodeBundle(cm.value?.data?.[caKeys.bundle] ?? "");
  if (secret.value) {
    const data = secret.value.data ?? {};
    const a = secret.value.metadata?.annotations ?? {};
    return {
      source: "secret",
      current: decodeBundle(unb64(data[caKeys.cert]))[0],
      trusted: decodeBundle(unb64(data[caKeys.bundle]) || unb64(data[caKeys.cert])),
      published,
      publishedDenied: cm.denied,
      lastRotation: { at: a[annotations.rotatedAt], reason: a[annotations.rotationReason] },
    };
  }
  if (cm.denied && secret.denied) {
    throw new PluginError(`${secret.denied}, and ${cm.denied}: the CA cannot be read`, EXIT.forbidden);
  }
  if (!cm.value && !secret.value) {
    throw new PluginError(
      `no CA: neither Secret ${namespace}/${secretName} nor ConfigMap ${namespace}/${bundleConfigMapName} exists (is the system installed?)`,
      EXIT.error,
    );
  }
  return {
    source: "configmap",
    current: published[0],
    trusted: published,
    published,
    secretDenied: secret.denied,
  };
}

/** When rotate-ca's daily ping rotates this CA (fewer than `minRemainingDays` left), and whether it is due. */
export function nextRotation(
  ca: x509.X509Certificate,
  now: Date,
  minRemainingDays = ROTATE_MIN_REMAINING_DAYS,
) {
  return {
    at: new Date(ca.notAfter.getTime() - minRemainingDays * DAY_MS),
    due: rotationDue(ca, now, minRemainingDays),
  };
}

/** The published bundle, for commands that only verify (never the Secret: no need for its key). */
export async function publishedBundle(kc: k8s.KubeConfig): Promise<x509.X509Certificate[]> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const { namespace, bundleConfigMapName: name } = where;
  const cm = await call({ verb: "get", resource: "configmaps", namespace, name }, () =>
    core.readNamespacedConfigMap({ namespace, name }),
  );
  return decodeBundle(cm?.data?.[caKeys.bundle] ?? "");
}
