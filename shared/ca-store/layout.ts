// Where CA state lives (configurable, with the defaults of names.ts); the one definition every function reads.
import * as z from "zod";
import { caDefaults } from "../names.ts";

export const caStoreConfigShape = {
  CA_NAMESPACE: z
    .string()
    .min(1)
    .default(caDefaults.namespace)
    .describe("namespace of the CA Secret and the published bundle"),
  CA_SECRET_NAME: z
    .string()
    .min(1)
    .default(caDefaults.secretName)
    .describe("Secret holding the CA certificate and key"),
  CA_BUNDLE_CONFIGMAP_NAME: z
    .string()
    .min(1)
    .default(caDefaults.bundleConfigMapName)
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
