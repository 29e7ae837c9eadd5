// The core objects the domains read and write (Secrets, ConfigMaps, Services, Namespaces) and CSRs, by what they
// are: reads give undefined for a 404, lists are page readers for pages.ts; only this folder knows client-node's
// method names. Writes return the API's own error, so each caller decides what a conflict means there.
import type * as k8s from "@kubernetes/client-node";
import type { Kube } from "./client.ts";
import { readOptional } from "./objects.ts";
import type { ListPage } from "./pages.ts";

interface CoreObjects {
  Secret: k8s.V1Secret;
  ConfigMap: k8s.V1ConfigMap;
  Service: k8s.V1Service;
}
export type CoreKind = keyof CoreObjects;

type Ref = { namespace: string; name: string };
const readers: { [K in CoreKind]: (kube: Kube, ref: Ref) => Promise<CoreObjects[K]> } = {
  Secret: (kube, ref) => kube.core.readNamespacedSecret(ref),
  ConfigMap: (kube, ref) => kube.core.readNamespacedConfigMap(ref),
  Service: (kube, ref) => kube.core.readNamespacedService(ref),
};

/** One object, or undefined if there is none; `what` names it in an error (by default `<Kind> <ns>/<name>`). */
export function readObject<K extends CoreKind>(
  kube: Kube,
  kind: K,
  namespace: string,
  name: string,
  what = `${kind} ${namespace}/${name}`,
): Promise<CoreObjects[K] | undefined> {
  return readOptional(what, () => readers[kind](kube, { namespace, name }));
}

export const readNamespace = (kube: Kube, name: string) =>
  readOptional(`Namespace ${name}`, () => kube.core.readNamespace({ name }));

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
type Lists = { [K in keyof ListedKinds]: { items: ListedKinds[K][]; metadata?: { _continue?: string } } };
type Query = Omit<Selection, "namespace"> & { _continue?: string };
const listers: {
  [K in keyof ListedKinds]: (kube: Kube, q: Query, namespace?: string) => Promise<Lists[K]>;
} = {
  Secret: (kube, q, namespace) =>
    namespace ? kube.core.listNamespacedSecret({ namespace, ...q }) : kube.core.listSecretForAllNamespaces(q),
  ConfigMap: (kube, q, namespace) =>
    namespace
      ? kube.core.listNamespacedConfigMap({ namespace, ...q })
      : kube.core.listConfigMapForAllNamespaces(q),
  Service: (kube, q, namespace) =>
    namespace
      ? kube.core.listNamespacedService({ namespace, ...q })
      : kube.core.listServiceForAllNamespaces(q),
  Namespace: (kube, q) => kube.core.listNamespace(q),
};

/** The page reader of the objects of `kind` that `selection` picks (for forEachPage / listAll). */
export function pagesOf<K extends keyof ListedKinds>(
  kube: Kube,
  kind: K,
  selection: Selection = {},
): ListPage<ListedKinds[K]> {
  const { namespace, ...query } = selection;
  return (cont) => listers[kind](kube, { ...query, _continue: cont }, namespace);
}

/** Creates `body` in `namespace` (as `fieldManager`, if given). */
export function createObject<K extends "Secret" | "ConfigMap">(
  kube: Kube,
  kind: K,
  namespace: string,
  body: CoreObjects[K],
  fieldManager?: string,
): Promise<CoreObjects[K]> {
  const opts = fieldManager === undefined ? {} : { fieldManager };
  return (
    kind === "Secret"
      ? kube.core.createNamespacedSecret({ namespace, body, ...opts })
      : kube.core.createNamespacedConfigMap({ namespace, body, ...opts })
  ) as Promise<CoreObjects[K]>;
}

/** Replaces a Secret; the resourceVersion in `body` makes it conditional. */
export const replaceSecret = (kube: Kube, namespace: string, name: string, body: k8s.V1Secret) =>
  kube.core.replaceNamespacedSecret({ namespace, name, body });

/** Deletes an object only if it is still the one read (uid and resourceVersion preconditions). */
export function deleteObject(
  kube: Kube,
  kind: "Secret" | "ConfigMap",
  namespace: string,
  name: string,
  preconditions: { uid?: string; resourceVersion?: string },
): Promise<unknown> {
  const body = { preconditions };
  return kind === "ConfigMap"
    ? kube.core.deleteNamespacedConfigMap({ namespace, name, body })
    : kube.core.deleteNamespacedSecret({ namespace, name, body });
}

export const readCsr = (kube: Kube, name: string) =>
  readOptional(`CertificateSigningRequest ${name}`, () =>
    kube.certificates.readCertificateSigningRequest({ name }),
  );

/** The CSRs of one signer, a page of `limit` at a time. */
export const csrPagesOf =
  (kube: Kube, signerName: string, limit: number): ListPage<k8s.V1CertificateSigningRequest> =>
  (cont) =>
    kube.certificates.listCertificateSigningRequest({
      fieldSelector: `spec.signerName=${signerName}`,
      limit,
      _continue: cont,
    });

/** Approves or denies: `body` carries the new condition. */
export const replaceCsrApproval = (kube: Kube, name: string, body: k8s.V1CertificateSigningRequest) =>
  kube.certificates.replaceCertificateSigningRequestApproval({ name, body });

/** Writes status.certificate or a Failed condition, through the status subresource. */
export const replaceCsrStatus = (kube: Kube, name: string, body: k8s.V1CertificateSigningRequest) =>
  kube.certificates.replaceCertificateSigningRequestStatus({ name, body });
