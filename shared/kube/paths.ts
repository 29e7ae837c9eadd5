// Where each kind this system touches lives in the API: the REST paths that client-node's generated classes
// (and its generic client's discovery request) used to work out.
import { FunctionError } from "../runtime/errors.ts";

/** The resource (plural) of every kind the functions read or write; a kind not here is a programming error. */
const RESOURCES: Record<string, string> = {
  ConfigMap: "configmaps",
  Secret: "secrets",
  Service: "services",
  Namespace: "namespaces",
  Event: "events",
  APIService: "apiservices",
  CustomResourceDefinition: "customresourcedefinitions",
  MutatingWebhookConfiguration: "mutatingwebhookconfigurations",
  ValidatingWebhookConfiguration: "validatingwebhookconfigurations",
  CertificateSigningRequest: "certificatesigningrequests",
  TokenReview: "tokenreviews",
  SubjectAccessReview: "subjectaccessreviews",
};

export interface Where {
  apiVersion: string;
  kind: string;
  /** Namespaced kinds only; without it a namespaced kind is listed across every namespace. */
  namespace?: string;
}

/** The collection: `/api/v1/namespaces/ns/secrets`, `/apis/apiregistration.k8s.io/v1/apiservices`. */
export function collectionPath(where: Where): string {
  const resource = RESOURCES[where.kind];
  if (!resource) throw new FunctionError("internal", `no REST path known for kind ${where.kind}`);
  const group = where.apiVersion.includes("/") ? `/apis/${where.apiVersion}` : `/api/${where.apiVersion}`;
  const ns = where.namespace ? `/namespaces/${segment(where.namespace)}` : "";
  return `${group}${ns}/${resource}`;
}

/** One object, or one of its subresources (`status`, `approval`). */
export const objectPath = (where: Where, name: string, subresource?: string) =>
  `${collectionPath(where)}/${segment(name)}${subresource ? `/${subresource}` : ""}`;

/** One path segment; "." and ".." would survive encoding and be resolved away by the URL. */
function segment(name: string): string {
  if (name === "" || name === "." || name === "..")
    throw new FunctionError("malformed", `${JSON.stringify(name)} is not an object's name`);
  return encodeURIComponent(name);
}
