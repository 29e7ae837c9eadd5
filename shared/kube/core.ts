// The core objects the domains read and write (Secrets, ConfigMaps, Services, Namespaces) and CSRs, by what they
// are: reads give undefined for a 404, lists are page readers for pages.ts; only this folder knows REST paths.
// Writes return the API's own error, so each caller decides what a conflict means there.
import type * as k8s from "@kubernetes/client-node";
import type { Kube } from "./client.ts";
import { readAny } from "./objects.ts";
import { listPage, type ListPage } from "./pages.ts";
import { collectionPath, objectPath } from "./paths.ts";

interface CoreObjects {
  Secret: k8s.V1Secret;
  ConfigMap: k8s.V1ConfigMap;
  Service: k8s.V1Service;
}
export type CoreKind = keyof CoreObjects;

const core = (kind: string, namespace?: string) => ({ apiVersion: "v1", kind, namespace });
const certificates = { apiVersion: "certificates.k8s.io/v1", kind: "CertificateSigningRequest" };

/** One object, or undefined if there is none; `what` names it in an error (by default `<Kind> <ns>/<name>`). */
export function readObject<K extends CoreKind>(
  kube: Kube,
  kind: K,
  namespace: string,
  name: string,
  what = `${kind} ${namespace}/${name}`,
): Promise<CoreObjects[K] | undefined> {
  return readAny<CoreObjects[K]>(kube, what, { apiVersion: "v1", kind, metadata: { name, namespace } });
}

export const readNamespace = (kube: Kube, name: string) =>
  readAny<k8s.V1Namespace>(kube, `Namespace ${name}`, {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name },
  });

export interface Selection {
  /** Only this namespace; every namespace without it. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size; without it the API server answers in one page. */
  limit?: number;
}

interface ListedKinds extends CoreObjects {
  Namespace: k8s.V1Namespace;
}

/** The page reader of the objects of `kind` that `selection` picks (for forEachPage / listAll). */
export function pagesOf<K extends keyof ListedKinds>(
  kube: Kube,
  kind: K,
  selection: Selection = {},
): ListPage<ListedKinds[K]> {
  const { namespace, ...query } = selection;
  return listPage(kube, collectionPath(core(kind, namespace)), query);
}

/** Creates `body` in `namespace` (as `fieldManager`, if given). */
export function createObject<K extends CoreKind>(
  kube: Kube,
  kind: K,
  namespace: string,
  body: CoreObjects[K],
  fieldManager?: string,
): Promise<CoreObjects[K]> {
  return kube.rest({
    method: "POST",
    path: collectionPath(core(kind, namespace)),
    query: { fieldManager },
    body: { apiVersion: "v1", kind, ...body },
  });
}

/** Replaces a Secret; the resourceVersion in `body` makes it conditional. */
export const replaceSecret = (kube: Kube, namespace: string, name: string, body: k8s.V1Secret) =>
  kube.rest<k8s.V1Secret>({
    method: "PUT",
    path: objectPath(core("Secret", namespace), name),
    body: { apiVersion: "v1", kind: "Secret", ...body },
  });

/** Deletes an object only if it is still the one read (uid and resourceVersion preconditions). */
export function deleteObject(
  kube: Kube,
  kind: "Secret" | "ConfigMap",
  namespace: string,
  name: string,
  preconditions: { uid?: string; resourceVersion?: string },
): Promise<unknown> {
  return kube.rest({
    method: "DELETE",
    path: objectPath(core(kind, namespace), name),
    body: { apiVersion: "v1", kind: "DeleteOptions", preconditions },
  });
}

export const readCsr = (kube: Kube, name: string) =>
  readAny<k8s.V1CertificateSigningRequest>(kube, `CertificateSigningRequest ${name}`, {
    ...certificates,
    metadata: { name },
  });

/** The CSRs of one signer, a page of `limit` at a time. */
export const csrPagesOf = (
  kube: Kube,
  signerName: string,
  limit: number,
): ListPage<k8s.V1CertificateSigningRequest> =>
  listPage(kube, collectionPath(certificates), { fieldSelector: `spec.signerName=${signerName}`, limit });

/** Approves or denies: `body` carries the new condition. */
export const replaceCsrApproval = (kube: Kube, name: string, body: k8s.V1CertificateSigningRequest) =>
  replaceCsr(kube, name, "approval", body);

/** Writes status.certificate or a Failed condition, through the status subresource. */
export const replaceCsrStatus = (kube: Kube, name: string, body: k8s.V1CertificateSigningRequest) =>
  replaceCsr(kube, name, "status", body);

const replaceCsr = (
  kube: Kube,
  name: string,
  subresource: "approval" | "status",
  body: k8s.V1CertificateSigningRequest,
) =>
  kube.rest<k8s.V1CertificateSigningRequest>({
    method: "PUT",
    path: objectPath(certificates, name, subresource),
    body: { apiVersion: certificates.apiVersion, kind: certificates.kind, ...body },
  });
