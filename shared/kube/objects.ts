// Typed reads and writes shared by the functions: 404 as undefined, patches with our field manager.
import * as k8s from "@kubernetes/client-node";
import { classifyKubeError, isNotFound, type Kube } from "./client.ts";
import { FIELD_MANAGER } from "../names.ts";

/** Runs a read; a 404 is `undefined`, any other failure a classified error. */
export async function readOptional<T>(what: string, read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw classifyKubeError(err, `read ${what}`);
  }
}

/** Runs a write; failures become classified errors (conflicts stay recognisable as kind "conflict"). */
export async function write<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw classifyKubeError(err, what);
  }
}

/** Any kind, by apiVersion, kind and name (the generic client): undefined for a 404. */
export function readAny<T extends k8s.KubernetesObject>(
  kube: Kube,
  what: string,
  key: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } },
): Promise<T | undefined> {
  return readOptional(what, () => kube.objects.read<T>(key));
}

/** One page (`limit`, `cont`) of every object of a kind, in every namespace (the generic client). */
export function listAny<T extends k8s.KubernetesObject>(
  kube: Kube,
  apiVersion: string,
  kind: string,
  limit: number,
  cont?: string,
): Promise<{ items: T[]; metadata?: { _continue?: string } }> {
  return kube.objects.list<T>(
    apiVersion,
    kind,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    limit,
    cont,
  );
}

export interface ObjectKey {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** A JSON merge patch; a `resourceVersion` in it makes the write conditional (409 if the object moved on). */
export function mergePatch<T extends k8s.KubernetesObject>(
  kube: Kube,
  key: ObjectKey,
  patch: { metadata?: Record<string, unknown>; [field: string]: unknown },
): Promise<T> {
  const body = {
    ...patch,
    apiVersion: key.apiVersion,
    kind: key.kind,
    metadata: {
      ...(patch.metadata ?? {}),
      name: key.name,
      ...(key.namespace ? { namespace: key.namespace } : {}),
    },
  };
  return write(`patch ${describe(key)}`, () =>
    kube.objects.patch<T>(
      body as T,
      undefined,
      undefined,
      FIELD_MANAGER,
      undefined,
      k8s.PatchStrategy.MergePatch,
    ),
  );
}

/** A merge or strategic-merge patch of `body` (which names the object), as `fieldManager`. */
export function patchAs<T extends k8s.KubernetesObject>(
  kube: Kube,
  what: string,
  body: T,
  strategy: "merge" | "strategic",
  fieldManager = FIELD_MANAGER,
): Promise<T> {
  const contentType =
    strategy === "merge" ? k8s.PatchStrategy.MergePatch : k8s.PatchStrategy.StrategicMergePatch;
  return write(what, () =>
    kube.objects.patch<T>(body, undefined, undefined, fieldManager, undefined, contentType),
  );
}

/** Server-side apply of just the fields in `intent`, owned by `fieldManager`; others keep theirs. */
export function apply<T extends k8s.KubernetesObject>(
  kube: Kube,
  intent: T,
  fieldManager = FIELD_MANAGER,
): Promise<T> {
  return write(`apply ${intent.kind} ${intent.metadata?.namespace ?? ""}/${intent.metadata?.name}`, () =>
    kube.objects.patch<T>(
      intent,
      undefined,
      undefined,
      fieldManager,
      true,
      k8s.PatchStrategy.ServerSideApply,
    ),
  );
}

export const describe = (key: ObjectKey) =>
  `${key.kind} ${key.namespace ? `${key.namespace}/` : ""}${key.name}`;
