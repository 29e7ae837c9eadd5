// The CloudEvents Knative's ApiServerSource (both modes) and PingSource emit, as zod schemas.
import * as z from "zod";

const dns1123Subdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, "not a valid Kubernetes name");
const dns1123Label = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "not a valid namespace name");

export const objectReference = z.object({
  apiVersion: z.string().min(1).max(253),
  kind: z.string().min(1).max(63),
  namespace: dns1123Label.optional(),
  name: dns1123Subdomain,
});
export type ObjectReference = z.infer<typeof objectReference>;

const resourceObject = z
  .object({
    apiVersion: z.string().min(1).max(253),
    kind: z.string().min(1).max(63),
    metadata: z.looseObject({ name: dns1123Subdomain, namespace: dns1123Label.optional() }),
  })
  .loose();

export const apiServerActions = ["add", "update", "delete"] as const;
export type ApiServerAction = (typeof apiServerActions)[number];

/** What a handler sees of an ApiServerSource event: always a reference; the object only in Resource mode. */
export interface ObjectEvent {
  source: "apiserver";
  action: ApiServerAction;
  mode: "ref" | "resource";
  ref: ObjectReference;
  object?: Record<string, unknown>;
}

export interface PingEvent {
  source: "ping";
  data: unknown;
}

export const pingEventType = "dev.knative.sources.ping";
export const apiServerEventType = (mode: "ref" | "resource", action: ApiServerAction) =>
  `dev.knative.apiserver.${mode}.${action}`;

export interface WatchedKind {
  kind: string;
  /** "v1", "apps/v1", ...; omitted means any version of the kind */
  apiVersion?: string;
}

/**
 * Schema for ApiServerSource events about the given kinds. An event about any other kind is
 * malformed for this function: the source is wired wrong or the event is forged.
 */
export function apiServerEvent(kinds: WatchedKind[]) {
  const types = apiServerActions.flatMap((a) => [
    apiServerEventType("ref", a),
    apiServerEventType("resource", a),
  ]);
  const accepts = (apiVersion: string, kind: string) =>
    kinds.some((k) => k.kind === kind && (k.apiVersion === undefined || k.apiVersion === apiVersion));
  const wanted = kinds.map((k) => (k.apiVersion ? `${k.apiVersion}/${k.kind}` : k.kind)).join(", ");
  return z
    .object({
      type: z.enum(types as [string, ...string[]]),
      data: z.unknown(),
    })
    .transform((ev, ctx): ObjectEvent => {
      const [mode, action] = ev.type.split(".").slice(3) as ["ref" | "resource", ApiServerAction];
      if (mode === "ref") {
        const ref = objectReference.safeParse(ev.data);
        if (!ref.success) {
          for (const issue of ref.error.issues) ctx.addIssue({ ...issue, path: ["data", ...issue.path] });
          return z.NEVER;
        }
        if (!accepts(ref.data.apiVersion, ref.data.kind)) {
          ctx.addIssue({ code: "custom", path: ["data", "kind"], message: `expected ${wanted}` });
          return z.NEVER;
        }
        return { source: "apiserver", action, mode, ref: ref.data };
      }
      const obj = resourceObject.safeParse(ev.data);
      if (!obj.success) {
        for (const issue of obj.error.issues) ctx.addIssue({ ...issue, path: ["data", ...issue.path] });
        return z.NEVER;
      }
      const { apiVersion, kind, metadata } = obj.data;
      if (!accepts(apiVersion, kind)) {
        ctx.addIssue({ code: "custom", path: ["data", "kind"], message: `expected ${wanted}` });
        return z.NEVER;
      }
      const ref: ObjectReference = { apiVersion, kind, name: metadata.name };
      if (metadata.namespace) ref.namespace = metadata.namespace;
      return { source: "apiserver", action, mode, ref, object: obj.data };
    });
}

export const pingEvent = z
  .object({ type: z.literal(pingEventType), data: z.unknown() })
  .transform((ev): PingEvent => ({ source: "ping", data: ev.data }));
