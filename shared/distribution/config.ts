// The cluster-wide opt-in: a ConfigMap in the CA namespace says whether, where and under which names the CA bundle
// is copied into namespaces. Parsed strictly, so a typo is an error rather than a silently ignored key.
import * as z from "zod";
import { copyNames, DISTRIBUTED_LABEL } from "../names.ts";
import { parseLabelSelector, SelectorError, type LabelSelector } from "./selector.ts";

export const distributionConfigShape = {
  DISTRIBUTION_CONFIGMAP_NAME: z
    .string()
    .min(1)
    .default("ca-distribution")
    .describe("ConfigMap in CA_NAMESPACE that turns CA distribution on and configures it"),
  DISTRIBUTION_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(16)
    .describe("namespaces written at once during a full sweep"),
};

/** Marks every copy this system made; nothing without it is ever changed or deleted. */
export const DISTRIBUTED_SELECTOR = `${DISTRIBUTED_LABEL}=true`;

/** Never receive copies, whatever the configuration says. */
export const ALWAYS_EXCLUDED = ["kube-system"];

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const flag = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(["true", "false"], { error: 'must be "true" or "false"' }))
  .transform((v) => v === "true");

const schema = z.strictObject(
  {
    enabled: flag.default(true),
    namespaceSelector: z
      .string()
      .default("")
      .transform((text, ctx): LabelSelector => {
        try {
          return parseLabelSelector(text);
        } catch (err) {
          if (!(err instanceof SelectorError)) throw err;
          ctx.addIssue({ code: "custom", message: err.message });
          return z.NEVER;
        }
      }),
    exclude: z
      .string()
      .default("")
      .transform((text, ctx) => {
        const names = text.split(/[\s,]+/).filter(Boolean);
        for (const n of names.filter((n) => n.length > 63 || !dns1123Label.test(n)))
          ctx.addIssue({ code: "custom", message: `${JSON.stringify(n)} is not a namespace name` });
        return names;
      }),
    configMapName: z
      .string()
      .trim()
      .default(copyNames.configMap)
      .pipe(
        z
          .string()
          .max(253)
          .regex(dns1123Subdomain, "not a valid ConfigMap name")
          .refine((n) => n !== "kube-root-ca.crt", "kube-root-ca.crt belongs to Kubernetes' own publisher"),
      ),
    secret: flag.default(false),
  },
  {
    error: (issue) =>
      issue.code === "unrecognized_keys" ? `unknown key(s): ${issue.keys.join(", ")}` : undefined,
  },
);

export type DistributionConfig = z.infer<typeof schema>;

export type ConfigVerdict =
  | { state: "absent" }
  | { state: "valid"; config: DistributionConfig }
  | { state: "invalid"; problems: string[] };

/** Reads the ConfigMap's data (undefined: there is no ConfigMap, so distribution is off). */
export function parseDistributionConfig(data: Record<string, string> | undefined): ConfigVerdict {
  if (data === undefined) return { state: "absent" };
  const result = schema.safeParse(data);
  if (result.success) return { state: "valid", config: result.data };
  return {
    state: "invalid",
    problems: result.error.issues.map((i) =>
      i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message,
    ),
  };
}
