// An object as an ApiServerSource event carries it, and that event delivered to a function as its source would.
import assert from "node:assert/strict";
import type * as k8s from "@kubernetes/client-node";
import { apiServerEvent, deliver, sourceToken, type ObjectLike } from "../../dev/events.ts";

/** A client-node object as an event carries it: objects it creates or reads come back without apiVersion and kind. */
export const asEvent = (o: { metadata?: k8s.V1ObjectMeta }, kind: string, apiVersion = "v1") =>
  ({ ...o, apiVersion, kind }) as unknown as ObjectLike;

export interface ObjectEventOptions {
  action?: "add" | "update" | "delete";
  /** the object's apiVersion; "v1" (the core group) unless given */
  apiVersion?: string;
  /** "ref" (the adapter's default: a reference to the object) or "resource" (the object itself) */
  mode?: "ref" | "resource";
}

/**
 * Function `fn`'s answer to the event its ApiServerSource sends about `o` ("add" unless told), delivered to its
 * URL with that source's token.
 */
export async function notifyFunction(
  kc: k8s.KubeConfig,
  fn: { name: string; url: string },
  o: { metadata?: k8s.V1ObjectMeta },
  kind: string,
  { action = "add", apiVersion, mode }: ObjectEventOptions = {},
) {
  return deliver(
    fn.url,
    apiServerEvent(asEvent(o, kind, apiVersion), action, mode),
    await sourceToken(kc, fn.name),
  );
}

/** As `notifyFunction`, where the function must answer 200: its JSON answer. */
export async function notifyOk(
  kc: k8s.KubeConfig,
  fn: { name: string; url: string },
  o: { metadata?: k8s.V1ObjectMeta },
  kind: string,
  options?: ObjectEventOptions,
): Promise<Record<string, unknown>> {
  const res = await notifyFunction(kc, fn, o, kind, options);
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json;
}
