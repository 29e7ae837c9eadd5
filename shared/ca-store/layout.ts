// Where CA state lives and what each key holds; the one definition every function reads.
import { z } from "zod";

export const caStoreConfigShape = {
  CA_NAMESPACE: z
    .string()
    .min(1)
    .default("service-ca")
    .describe("namespace of the CA Secret and the published bundle"),
  CA_SECRET_NAME: z
    .string()
    .min(1)
    .default("signing-key")
    .describe("Secret holding the CA certificate and key"),
  CA_BUNDLE_CONFIGMAP_NAME: z
    .string()
    .min(1)
    .default("signing-cabundle")
    .describe("ConfigMap the CA bundle is published in (readable without the key)"),
};

export const rotationConfigShape = {
  CA_ROTATE_MIN_REMAINING_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .max(789)
    .default(395)
    .describe("rotate the CA when fewer days than this remain on it"),
};

export interface CaLocation {
  namespace: string;
  secretName: string;
  bundleConfigMapName: string;
}

export const caLocationFrom = (c: {
  CA_NAMESPACE: string;
  CA_SECRET_NAME: string;
  CA_BUNDLE_CONFIGMAP_NAME: string;
}): CaLocation => ({
  namespace: c.CA_NAMESPACE,
  secretName: c.CA_SECRET_NAME,
  bundleConfigMapName: c.CA_BUNDLE_CONFIGMAP_NAME,
});

/** Keys of the CA Secret. */
export const caKeys = {
  cert: "tls.crt",
  key: "tls.key",
  /** Every CA certificate a client should trust now (current, plus the previous CA's material in an overlap). */
  bundle: "ca-bundle.crt",
  /** Certificates appended to every serving certificate after a rotation, so old-bundle clients trust new leaves. */
  chain: "intermediate-ca.crt",
  /** The CA this one replaced, kept for the record and for trust until it expires. */
  previous: "previous-ca.crt",
} as const;

export const ROTATION_REASON_ANNOTATION = "service-ca-functions.dev/last-rotation-reason";
export const ROTATED_AT_ANNOTATION = "service-ca-functions.dev/rotated-at";

export const BUNDLE_KEY = "ca-bundle.crt";
export const MANAGED_BY_LABEL = { "app.kubernetes.io/managed-by": "service-ca-functions" };
/**
 * The CA Secret is ours but no serving certificate: its own label lets the serving-secrets event source leave it
 * out (`notin`), so a CA write does not reach issue-serving-cert as if it were a serving Secret.
 */
export const CA_SECRET_LABELS = { ...MANAGED_BY_LABEL, "app.kubernetes.io/component": "signing-ca" };
