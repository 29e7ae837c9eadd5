// Checks Kubernetes ServiceAccount tokens: locally against the API server's signing keys (its OIDC discovery,
// fetched with the function's own credentials), then by TokenReview with the audience for the ones that matter.
import { createPublicKey, verify, type JsonWebKey, type KeyObject } from "node:crypto";
import type { Kube } from "./client.ts";
import { classifyKubeError } from "./client.ts";
import { reviewToken } from "./auth.ts";
import type { Clock } from "../runtime/clock.ts";
import type { TokenClaims, TokenVerdict, TokenVerifier } from "../runtime/event-senders.ts";
import { transientSenderCheckError } from "../runtime/event-senders.ts";

/** A token naming a key we do not know re-reads the keys at most this often (a caller cannot make us poll). */
const KEY_REFRESH_MS = 5 * 60_000;
/** Clock skew tolerated on exp/nbf, as kube-apiserver's own JWT validation allows. */
const LEEWAY_S = 60;

interface SigningKeys {
  issuer: string;
  keys: Array<{ kid?: string; key: KeyObject }>;
  fetchedAt: number;
}

const algorithms: Record<string, { hash: string; ec: boolean }> = {
  RS256: { hash: "sha256", ec: false },
  RS384: { hash: "sha384", ec: false },
  RS512: { hash: "sha512", ec: false },
  ES256: { hash: "sha256", ec: true },
  ES384: { hash: "sha384", ec: true },
};

export function createServiceAccountTokenVerifier(
  kube: () => Kube,
  clock: Clock,
): TokenVerifier & {
  /** Fetches the signing keys now (at start), so the first event does not wait for them. */
  prefetch(): Promise<void>;
} {
  let keys: SigningKeys | undefined;
  let loading: Promise<SigningKeys> | undefined;
  let lastAttempt = -Infinity;
  const load = () =>
    (loading ??= ((lastAttempt = clock.now().getTime()), fetchSigningKeys(kube(), clock))
      .then((k) => (keys = k))
      .finally(() => (loading = undefined)));

  const keysFor = async (kid: string | undefined): Promise<SigningKeys> => {
    let current: SigningKeys;
    try {
      current = keys ?? (await load());
    } catch (err) {
      throw transientSenderCheckError(err);
    }
    const known = current.keys.some((k) => kid === undefined || k.kid === kid);
    if (!known && clock.now().getTime() - lastAttempt > KEY_REFRESH_MS) {
      const stale = current;
      current = await load().catch(() => stale);
    }
    return current;
  };

  return {
    prefetch: async () => {
      await load();
    },

    async inspect(token, audience): Promise<TokenVerdict<TokenClaims>> {
      const parts = token.split(".");
      if (parts.length !== 3) return { ok: false, reason: "not a JWT" };
      const [h, p, s] = parts as [string, string, string];
      let header: { alg?: unknown; kid?: unknown };
      let claims: Record<string, unknown>;
      try {
        header = JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
        claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
      } catch {
        return { ok: false, reason: "not a JWT" };
      }
      const alg = typeof header.alg === "string" ? algorithms[header.alg] : undefined;
      if (!alg) return { ok: false, reason: `algorithm ${String(header.alg)} not accepted` };
      const kid = typeof header.kid === "string" ? header.kid : undefined;
      const signing = await keysFor(kid);
      const candidates = signing.keys.filter((k) => kid === undefined || k.kid === kid);
      const data = Buffer.from(`${h}.${p}`);
      const signature = Buffer.from(s, "base64url");
      const signed = candidates.some((k) => {
        try {
          return verify(
            alg.hash,
            data,
            alg.ec ? { key: k.key, dsaEncoding: "ieee-p1363" } : k.key,
            signature,
          );
        } catch {
          return false;
        }
      });
      if (!signed) return { ok: false, reason: "signature not made by the API server's keys" };
      if (claims.iss !== signing.issuer) return { ok: false, reason: `issuer ${String(claims.iss)}` };
      const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      if (!aud.includes(audience)) return { ok: false, reason: `audience ${JSON.stringify(claims.aud)}` };
      const now = clock.now().getTime() / 1000;
      const exp = typeof claims.exp === "number" ? claims.exp : 0;
      if (exp + LEEWAY_S < now) return { ok: false, reason: "expired" };
      if (typeof claims.nbf === "number" && claims.nbf - LEEWAY_S > now)
        return { ok: false, reason: "not yet valid" };
      const sub = typeof claims.sub === "string" ? claims.sub : "";
      if (!sub.startsWith("system:serviceaccount:"))
        return { ok: false, reason: "not a ServiceAccount token" };
      return { ok: true, value: { username: sub, expiresAt: exp } };
    },

    async review(token, audience) {
      let review;
      try {
        review = await reviewToken(kube(), { token, audiences: [audience] });
      } catch (err) {
        throw transientSenderCheckError(classifyKubeError(err, "review an event sender's token"));
      }
      const username = review.status?.user?.username;
      if (!review.status?.authenticated || !username)
        return { ok: false, reason: review.status?.error ?? "not authenticated" };
      if (!(review.status.audiences ?? []).includes(audience))
        return { ok: false, reason: "audience not confirmed" };
      return { ok: true, value: { username } };
    },
  };
}

/** The API server's OIDC discovery: its issuer and the public keys it signs ServiceAccount tokens with. */
async function fetchSigningKeys(kube: Kube, clock: Clock): Promise<SigningKeys> {
  const discovery = (await getJson(kube, "/.well-known/openid-configuration")) as { issuer?: string };
  const jwks = (await getJson(kube, "/openid/v1/jwks")) as { keys?: Array<JsonWebKey & { kid?: string }> };
  if (!discovery.issuer || !Array.isArray(jwks.keys))
    throw new Error("the API server serves no OIDC discovery");
  return {
    issuer: discovery.issuer,
    keys: jwks.keys.map((jwk) => ({ kid: jwk.kid, key: createPublicKey({ key: jwk, format: "jwk" }) })),
    fetchedAt: clock.now().getTime(),
  };
}

const getJson = (kube: Kube, path: string) =>
  kube.rest<unknown>({ method: "GET", path, accept: "application/jwk-set+json, application/json" });
