// Who is calling, and may they? The API server answers (TokenReview, SubjectAccessReview): no secrets of our own.
import type { IncomingHttpHeaders } from "node:http";
import type * as k8s from "@kubernetes/client-node";
import type { Kube } from "./client.ts";
import { classifyKubeError } from "./client.ts";
import { collectionPath } from "./paths.ts";
import { FunctionError, forbidden } from "../runtime/errors.ts";
import type { Logger } from "../runtime/logger.ts";

export interface Permission {
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  name?: string;
}

/**
 * Where a caller coming through the API server's Service proxy puts its token: the API server authenticates the
 * proxy request itself and removes the Authorization header before forwarding it, so the token must ride in a
 * header of its own (checked exactly like Authorization: a TokenReview, then a SubjectAccessReview).
 */
export const PROXIED_AUTHORIZATION_HEADER = "x-service-ca-authorization";

/** Who asks: a user as the API server knows it (from a TokenReview, or a CSR's spec). */
export interface Subject {
  user: string;
  groups?: string[];
  uid?: string;
  extra?: Record<string, string[]>;
}

/** The one access review: may `subject` do `need`? (SubjectAccessReview; `action` names it in an error.) */
export async function mayDo(
  kube: Kube,
  subject: Subject,
  need: Permission,
  action: string,
): Promise<boolean> {
  const review = { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview" };
  let access;
  try {
    access = await kube.rest<k8s.V1SubjectAccessReview>({
      method: "POST",
      path: collectionPath(review),
      body: { ...review, spec: { ...subject, resourceAttributes: { ...need, group: need.group ?? "" } } },
    });
  } catch (err) {
    throw classifyKubeError(err, action);
  }
  return access.status?.allowed === true;
}

export async function authorizeBearer(
  kube: Kube,
  headers: IncomingHttpHeaders,
  need: Permission,
  log?: Logger,
): Promise<string> {
  const given = headers.authorization || headers[PROXIED_AUTHORIZATION_HEADER];
  const match = /^Bearer\s+(\S+)$/i.exec(typeof given === "string" ? given : "");
  if (!match)
    throw new FunctionError(
      "unauthenticated",
      "send a Kubernetes bearer token: Authorization: Bearer <token>",
    );
  let review;
  try {
    review = await reviewToken(kube, { token: match[1]! });
  } catch (err) {
    throw classifyKubeError(err, "review the bearer token");
  }
  const user = review.status?.user;
  if (!review.status?.authenticated || !user?.username) {
    // The API server's reason (an unknown ServiceAccount, the audience it expects) is for our log, not the caller.
    log?.info("bearer token refused", { reason: review.status?.error ?? "not authenticated" });
    throw new FunctionError("unauthenticated", "the bearer token was not accepted");
  }
  const subject = { user: user.username, groups: user.groups, uid: user.uid, extra: user.extra };
  if (!(await mayDo(kube, subject, need, "check the caller's permission"))) {
    const what = `${need.verb} ${need.resource}${need.name ? `/${need.name}` : ""}${need.namespace ? ` in ${need.namespace}` : ""}`;
    throw forbidden(`${user.username} may not ${what}, which this action requires`);
  }
  return user.username;
}

/** What the API server makes of a token (a TokenReview), for the audiences given or its own. */
export function reviewToken(kube: Kube, spec: k8s.V1TokenReviewSpec) {
  const review = { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview" };
  return kube.rest<k8s.V1TokenReview>({
    method: "POST",
    path: collectionPath(review),
    body: { ...review, spec },
  });
}
