// Who may send a function events: its own Knative sources' OIDC identities, with a token for its audience, checked
// before the body is read. The token check itself (signature, TokenReview) is injected: the runtime knows no API.
import { createHash } from "node:crypto";
import * as z from "zod";
import type { Clock } from "./clock.ts";
import { FunctionError } from "./errors.ts";
import type { ConfigShape } from "./config.ts";
// infra/ creates the sources in the system namespace, and so Knative creates their OIDC ServiceAccounts there.
import { eventAudience, SYSTEM_NAMESPACE } from "../names.ts";

/** A Knative source that delivers to a function (declared in functions/<name>/index.ts). */
export interface EventSourceRef {
  kind: "ApiServerSource" | "PingSource";
  name: string;
}

/**
 * The ServiceAccount Knative Eventing (v0.48, pkg/auth GetOIDCServiceAccountNameForResource) makes for a source's
 * OIDC identity: kmeta.ChildName(<name>, "-oidc-sources.knative.dev-<Kind>"), lower-cased.
 */
export const knativeOidcServiceAccount = (source: EventSourceRef) =>
  knativeChildName(source.name, `-oidc-sources.knative.dev-${source.kind}`).toLowerCase();

/**
 * knative.dev/pkg kmeta.ChildName: parent + suffix, or, past 63 characters, hashed exactly as kmeta does it (md5
 * of parent + suffix as written, then as much of the suffix as fits).
 */
export function knativeChildName(parent: string, suffix: string): string {
  const longest = 63;
  const head = longest - 32;
  const md5 = (text: string) => createHash("md5").update(text).digest("hex");
  if (parent.length <= longest - suffix.length) return parent + suffix;
  if (head - suffix.length > 0) return parent.slice(0, head - suffix.length) + md5(parent) + suffix;
  let name = parent.slice(0, head) + md5(parent + suffix);
  if (longest - name.length > 0) name += suffix.slice(0, longest - name.length);
  return name.replace(/[^a-zA-Z0-9]+$/, "");
}

export const serviceAccountUsername = (namespace: string, name: string) =>
  `system:serviceaccount:${namespace}:${name}`;

/** The audience a function's sources ask tokens for, unless EVENT_AUDIENCE says otherwise. */
export const defaultAudience = eventAudience;

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dnsSubdomain = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** One allowed sender: `<namespace>/<serviceaccount>` or the full `system:serviceaccount:<ns>:<name>`. */
const sender = z.string().transform((entry, ctx) => {
  const parts = entry.startsWith("system:serviceaccount:")
    ? entry.slice("system:serviceaccount:".length).split(":")
    : entry.split("/");
  const [ns, name] = parts;
  if (parts.length !== 2 || !dnsLabel.test(ns!) || !dnsSubdomain.test(name!) || name!.length > 253) {
    ctx.addIssue({
      code: "custom",
      message: `${JSON.stringify(entry)} is not <namespace>/<serviceaccount> or system:serviceaccount:<namespace>:<name>`,
    });
    return z.NEVER;
  }
  return serviceAccountUsername(ns!, name!);
});

/** EVENT_AUDIENCE and EVENT_SENDERS for one function; their defaults come from the sources it declares. */
export function senderConfigShape(functionName: string, sources: EventSourceRef[]) {
  const defaults = sources.map((s) => `${SYSTEM_NAMESPACE}/${knativeOidcServiceAccount(s)}`);
  return {
    EVENT_AUDIENCE: z
      .string()
      .min(1)
      .max(256)
      .default(defaultAudience(functionName))
      .describe("the audience a sender's token must be issued for (its source's spec.sink.audience)"),
    EVENT_SENDERS: z
      .string()
      .default(defaults.join(","))
      .transform((list) => list.split(/[\s,]+/).filter((s) => s !== ""))
      .pipe(z.array(sender).min(1, "name at least one sender"))
      .describe(
        "who may send events: ServiceAccounts as <namespace>/<name> (comma-separated), by default the OIDC identities Knative gives this function's sources",
      ),
  } satisfies ConfigShape;
}

/** What a token says, once its signature, issuer, audience and lifetime check out locally. */
export interface TokenClaims {
  username: string;
  /** seconds since the epoch */
  expiresAt: number;
}

export type TokenVerdict<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * The two checks of a bearer token. `inspect` costs no API call (the API server's signing keys, fetched once);
 * `review` asks the API server (TokenReview with the audience), so a deleted ServiceAccount's token stops working.
 * Either throws for a transient failure (no keys yet, API server down): the sender retries.
 */
export interface TokenVerifier {
  inspect(token: string, audience: string): Promise<TokenVerdict<TokenClaims>>;
  review(token: string, audience: string): Promise<TokenVerdict<{ username: string }>>;
}

export interface SenderPolicy {
  audience: string;
  /** allowed usernames (system:serviceaccount:<ns>:<name>) */
  senders: string[];
}

export interface SenderRefusal {
  status: 401 | 403;
  /** for the log only: never sent to the caller */
  reason: string;
  username?: string;
}

export type SenderCheck = (
  authorization: string | undefined,
) => Promise<{ username: string } | SenderRefusal>;

/** A review's answer is reused this long (as kube-apiserver's webhook token authenticator caches, 2 min). */
const REVIEW_TTL_MS = 120_000;
const CACHE_LIMIT = 1024;

/**
 * Builds the check the host runs on every POST /: no token → 401; a token that fails locally (signature, issuer,
 * audience, expiry) → 401 with no API call; a valid token of someone else → 403 with no API call; a source's token
 * is reviewed once (concurrent requests with the same token share the review) and the answer cached briefly.
 */
export function createSenderCheck(policy: SenderPolicy, verifier: TokenVerifier, clock: Clock): SenderCheck {
  const allowed = new Set(policy.senders);
  const reviewed = new Map<string, { until: number; verdict: TokenVerdict<{ username: string }> }>();
  const inflight = new Map<string, Promise<TokenVerdict<{ username: string }>>>();

  const review = async (token: string, claims: TokenClaims) => {
    const key = createHash("sha256").update(token).digest("hex");
    const now = clock.now().getTime();
    const hit = reviewed.get(key);
    if (hit && hit.until > now) return hit.verdict;
    let pending = inflight.get(key);
    if (!pending) {
      pending = verifier.review(token, policy.audience).then((verdict) => {
        if (reviewed.size >= CACHE_LIMIT) reviewed.delete(reviewed.keys().next().value!);
        const until = Math.min(clock.now().getTime() + REVIEW_TTL_MS, claims.expiresAt * 1000);
        reviewed.set(key, { until, verdict });
        return verdict;
      });
      inflight.set(key, pending);
      void pending.finally(() => inflight.delete(key)).catch(() => {});
    }
    return pending;
  };

  return async (authorization) => {
    const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,16384})$/.exec(authorization ?? "");
    if (!match)
      return { status: 401, reason: authorization ? "not a bearer token" : "no Authorization header" };
    const token = match[1]!;
    const inspected = await verifier.inspect(token, policy.audience);
    if (!inspected.ok) return { status: 401, reason: inspected.reason };
    const { username } = inspected.value;
    if (!allowed.has(username)) return { status: 403, reason: "not a source of this function", username };
    const verdict = await review(token, inspected.value);
    if (!verdict.ok) return { status: 401, reason: `TokenReview: ${verdict.reason}`, username };
    if (verdict.value.username !== username)
      return { status: 401, reason: "TokenReview names another user", username: verdict.value.username };
    return { username };
  };
}

/** The answers a refused sender gets: nothing about why (that is in the function's log). */
export const refusalBody = (status: 401 | 403) =>
  status === 401
    ? { error: { kind: "unauthenticated", message: "unauthenticated" } }
    : { error: { kind: "forbidden", message: "forbidden" } };

export const transientSenderCheckError = (cause: unknown) =>
  new FunctionError("transient", "the sender's token could not be checked", undefined, { cause });
