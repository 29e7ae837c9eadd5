// Settings shared by every function that issues serving certificates.
import { z } from "zod";

export const servingCertConfigShape = {
  SERVING_CERT_VALIDITY_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3650)
    .default(730)
    .describe("lifetime of a serving certificate"),
  SERVING_CERT_REFRESH_FRACTION: z.coerce
    .number()
    .gt(0)
    .lt(1)
    .default(1 / 3)
    .describe("re-issue when less than this fraction of the lifetime remains"),
  SERVING_CERT_SINGLE_LABEL_NAMES: z
    .stringbool()
    .default(true)
    .describe(
      "issue the bare <svc> short name (Alauda's annotation, or serving-cert-short-names=true); false: <svc>.<ns> is the shortest. Set it alike on issue-serving-cert and expiry-scan",
    ),
};
