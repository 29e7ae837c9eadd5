// Settings shared by every function that issues serving certificates, and the scan's own.
import { availableParallelism } from "node:os";
import * as z from "zod";

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
  SERVING_CERT_KEEP_KEY_ON_ROTATION: z
    .stringbool()
    .default(true)
    .describe(
      "a certificate re-issued only because the CA was rotated keeps its key while the old CA is still trusted (a replaced or expired CA: a fresh key); false: a fresh key every time. Set it alike on issue-serving-cert and expiry-scan",
    ),
  SERVING_CERT_SINGLE_LABEL_NAMES: z
    .stringbool()
    .default(true)
    .describe(
      "issue the bare <svc> short name (Alauda's annotation, or serving-cert-short-names=true); false: <svc>.<ns> is the shortest. Set it alike on issue-serving-cert and expiry-scan",
    ),
};

const count = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

/** expiry-scan's settings. */
export const scanConfigShape = {
  SCAN_CONCURRENCY: count(1, 64, 8).describe("Services reconciled at once"),
  SCAN_KEY_GENERATIONS: count(1, 64, Math.max(1, availableParallelism() - 1)).describe(
    "RSA keys generated at once while re-issuing: one core fewer than the machine has, so a rotation's other fan-out (injection) is not starved",
  ),
  SCAN_MIN_INTERVAL_SECONDS: count(0, 3600, 0).describe(
    "at most one scan start per this many seconds per process, kind of event and CA; a request inside it is answered with the last scan's summary, marked coalesced. Scans never overlap either way (infra/ sets 60)",
  ),
};

/** issue-serving-cert's own settings: its key pool and its queue per namespace. */
export const issuerConfigShape = {
  KEY_POOL_SIZE: z.coerce
    .number()
    .int()
    .min(0)
    .max(64)
    .default(8)
    .describe("RSA keys generated ahead of need, so key generation leaves the latency path (0: none)"),
  KEY_POOL_WORKERS: z.coerce
    .number()
    .int()
    .min(1)
    .max(16)
    .default(2)
    .describe("RSA keys generated at once by the pool (2 keeps a 2-core node's cores busy refilling)"),
  MAX_IN_FLIGHT_PER_NAMESPACE: z.coerce
    .number()
    .int()
    .min(0)
    .max(1000)
    .default(1)
    .describe(
      "objects of one namespace worked on at once, the rest queued, so one tenant's churn cannot starve another's (0: no limit). 1 measured fairer than 2 on 2 cores (BENCHMARKS.md, Fairness) at the same burst rate per key generated",
    ),
  CA_CACHE_SECONDS: z.coerce
    .number()
    .min(0)
    .max(3600)
    .default(30)
    .describe(
      "how long the CA read for one certificate signs the next ones without a read (0: a read per certificate); the published bundle's event, or a certificate from another CA, ends it sooner, and what was issued meanwhile is judged again once a read shows another CA",
    ),
  QUEUED_RETRY_SECONDS: z.coerce
    .number()
    .min(0)
    .max(3600)
    .default(2)
    .describe(
      "first delay before queued work that failed is tried again (doubling, 4 tries in all; the scan repairs what is still left)",
    ),
  QUEUE_DRAIN_SECONDS: z.coerce
    .number()
    .min(0)
    .max(300)
    .default(20)
    .describe(
      "at shutdown, how long queued work is still worked through (within the pod's 30 s grace; the scan repairs what is left)",
    ),
};
