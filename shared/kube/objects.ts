// Typed reads and writes shared by the functions: 404 as undefined, patches with our field manager.
import type * as k8s from "@kubernetes/client-node";
import { classifyKubeError, isNotFound, type Kube } from "./client.ts";
import { listPage } from "./pages.ts";
import { objectPath, collectionPath } from "./paths.ts";
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
  const { name, namespace } = key.metadata;
  return readOptional(what, () =>
    kube.rest<T>({ method: "GET", path: objectPath({ ...key, namespace }, name) }),
  );
}

/** One page (`limit`, `cont`) of every object of a kind, in every namespace. */
export const listAny = <T extends k8s.KubernetesObject>(
  kube: Kube,
  apiVersion: string,
  kind: string,
  limit: number,
  cont?: string,
) => listPage<T>(kube, collectionPath({ apiVersion, kind }), { limit })(cont);

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
  return write(`patch ${describe(key)}`, () => patchObject<T>(kube, body, MERGE_PATCH, FIELD_MANAGER));
}

/** A merge or strategic-merge patch of `body` (which names the object), as `fieldManager`. */
export function patchAs<T extends k8s.KubernetesObject>(
  kube: Kube,
  what: string,
  body: T,
  strategy: "merge" | "strategic",
  fieldManager = FIELD_MANAGER,
): Promise<T> {
  const contentType = strategy === "merge" ? MERGE_PATCH : STRATEGIC_MERGE_PATCH;
  return write(what, () => patchObject<T>(kube, body, contentType, fieldManager));
}

/** Server-side apply of just the fields in `intent`, owned by `fieldManager`; others keep theirs. */
export function apply<T extends k8s.KubernetesObject>(
  kube: Kube,
  intent: T,
  fieldManager = FIELD_MANAGER,
): Promise<T> {
  return write(`apply ${intent.kind} ${intent.metadata?.namespace ?? ""}/${intent.metadata?.name}`, () =>
    patchObject<T>(kube, intent, SERVER_SIDE_APPLY, fieldManager, { force: true }),
  );
}

export const describe = (key: ObjectKey) =>
  `${key.kind} ${key.namespace ? `${key.namespace}/` : ""}${key.name}`;

export const MERGE_PATCH = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json";
// An apply configuration is YAML, and JSON is YAML.
const SERVER_SIDE_APPLY = "application/apply-patch+yaml";

/** A PATCH of the object `body` names (its apiVersion, kind, namespace and name), as `fieldManager` if given. */
export function patchObject<T extends k8s.KubernetesObject>(
  kube: Kube,
  body: k8s.KubernetesObject,
  contentType: string,
  fieldManager?: string,
  query: { force?: boolean } = {},
): Promise<T> {
  const { apiVersion, kind, metadata } = body;
  if (!apiVersion || !kind || !metadata?.name)
    throw new Error(`a patch must name its object's apiVersion, kind and name`);
  return kube.rest<T>({
    method: "PATCH",
    path: objectPath({ apiVersion, kind, namespace: metadata.namespace }, metadata.name),
    query: { fieldManager, ...query },
    body,
    contentType,
  });
}
