// The scan's join of Services and our Secrets (shared/serving-cert/scan-join.ts): both lists read a page at a time
// in the API server's key order (namespace "a-b" before "a"), what is held bounded by a namespace; out of order,
// every Service is still judged once and never beside another Service's Secret.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { joinByNamespace, type JoinStats } from "../../shared/serving-cert/scan-join.ts";

interface Svc {
  namespace: string;
  name: string;
  secret?: string;
}
interface Sec {
  namespace: string;
  name: string;
}

const keyOrder = <T extends { namespace: string; name: string }>(items: T[]) =>
  [...items].sort((a, b) => {
    const [x, y] = [`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`];
    return x < y ? -1 : x > y ? 1 : 0;
  });

/** A list served `size` items a page, recording the pages asked for. */
function pages<T>(items: T[], size: number) {
  const list = { reads: 0, next: async () => undefined as T[] | undefined };
  let at = 0;
  list.next = async () => {
    if (at >= items.length && list.reads > 0) return undefined;
    list.reads++;
    const page = items.slice(at, at + size);
    at += size;
    return page;
  };
  return list;
}

async function join(services: Svc[], secrets: Sec[], size: number) {
  const svcPages = pages(services, size);
  const secPages = pages(secrets, size);
  const judged: Array<readonly [Svc, Sec | undefined]> = [];
  const stats: JoinStats = await joinByNamespace<Svc, Sec, Svc>({
    services: svcPages.next,
    secrets: secPages.next,
    namespaceOf: (svc) => svc.namespace,
    want: (svc) => (svc.secret ? { secretName: svc.secret, kept: svc } : undefined),
    where: (secret) => secret,
    judge: async (pairs) => void judged.push(...pairs),
  });
  const named = judged
    .map(([svc, s]) => `${svc.namespace}/${svc.name}→${s ? `${s.namespace}/${s.name}` : "none"}`)
    .sort();
  return { judged, named, stats, servicePages: svcPages.reads, secretPages: secPages.reads };
}

describe("the scan's join of Services and Secrets", () => {
  it("pairs each annotated Service with its Secret in key order ('a-b/' before 'a/'); missing and orphan Secrets", async () => {
    const services = keyOrder([
      { namespace: "a-b", name: "x", secret: "x-tls" },
      { namespace: "a-b", name: "plain" },
      { namespace: "a", name: "x", secret: "x-tls" },
      { namespace: "a", name: "y", secret: "y-tls" },
      { namespace: "b", name: "z", secret: "z-tls" },
    ]);
    assert.equal(services[0]!.namespace, "a-b");
    const secrets = keyOrder([
      { namespace: "a-b", name: "x-tls" },
      { namespace: "a", name: "x-tls" },
      { namespace: "a", name: "orphan" },
      { namespace: "b", name: "z-tls" },
    ]);
    for (const size of [1, 2, 3, 10]) {
      const { named, stats } = await join(services, secrets, size);
      assert.deepEqual(
        named,
        ["a-b/x→a-b/x-tls", "a/x→a/x-tls", "a/y→none", "b/z→b/z-tls"],
        `pages of ${size}`,
      );
      assert.deepEqual([stats.services, stats.annotated, stats.inOrder], [5, 4, true]);
    }
  });

  it("holds a page of Secrets and at most one namespace's Services, not the cluster's (20 namespaces of 500, pages of 50)", async () => {
    const services: Svc[] = [];
    const secrets: Sec[] = [];
    for (let n = 0; n < 20; n++)
      for (let i = 0; i < 500; i++) {
        services.push({ namespace: `scan-${n}`, name: `svc-${i}`, secret: `svc-${i}-tls` });
        // A few Services whose Secret is missing, and orphan Secrets, so both lists wait on each other.
        if (i % 97 !== 0) secrets.push({ namespace: `scan-${n}`, name: `svc-${i}-tls` });
        if (i % 89 === 0) secrets.push({ namespace: `scan-${n}`, name: `gone-${i}-tls` });
      }
    const { judged, stats, servicePages, secretPages } = await join(
      keyOrder(services),
      keyOrder(secrets),
      50,
    );
    assert.equal(judged.length, 10_000);
    assert.equal(judged.filter(([, s]) => s === undefined).length, 20 * 6);
    // An orphan Secret early in a namespace waits for every Service of that namespace to be read.
    assert.ok(
      stats.mostHeld <= 500 + 2 * 50,
      `held ${stats.mostHeld} at most: one namespace and two pages are 600`,
    );
    assert.equal(servicePages, 10_000 / 50);
    assert.ok(secretPages <= Math.ceil(secrets.length / 50), `${secretPages} Secret pages`);
  });

  it("reads no Secret when no Service asks for one, and stops once every Service has its Secret", async () => {
    const none = await join([{ namespace: "a", name: "plain" }], [{ namespace: "a", name: "x" }], 10);
    assert.equal(none.secretPages, 0);
    const early = await join(
      [{ namespace: "a", name: "s", secret: "s-tls" }],
      keyOrder([
        { namespace: "a", name: "s-tls" },
        ...Array.from({ length: 30 }, (_, i) => ({ namespace: "z", name: `other-${i}` })),
      ]),
      10,
    );
    assert.deepEqual(early.named, ["a/s→a/s-tls"]);
    assert.equal(early.secretPages, 1);
  });

  it("asks for the next page before it judges the pairs in hand, and for no page it would not have read", async () => {
    const services = keyOrder(
      ["a", "b", "c"].flatMap((namespace) =>
        Array.from({ length: 4 }, (_, i) => ({ namespace, name: `s${i}`, secret: `s${i}-tls` })),
      ),
    );
    const secrets = services.map((s) => ({ namespace: s.namespace, name: s.secret! }));
    const log: string[] = [];
    const logged =
      <T>(what: string, list: { next: () => Promise<T[] | undefined> }) =>
      () => {
        log.push(what);
        return list.next();
      };
    await joinByNamespace<Svc, Sec, Svc>({
      services: logged("services", pages(services, 4)),
      secrets: logged("secrets", pages(secrets, 4)),
      namespaceOf: (svc) => svc.namespace,
      want: (svc) => ({ secretName: svc.secret!, kept: svc }),
      where: (secret) => secret,
      judge: async (pairs) => {
        if (pairs.length === 0) return;
        log.push(`judge ${pairs.length}`);
        await new Promise((r) => setTimeout(r, 1));
      },
    });
    // Each namespace's four pairs are judged while the next page of Services is being read (the last one's, while
    // the list's end is); no Secrets page is asked for past the last Service's Secret.
    assert.deepEqual(log, [
      "services",
      "secrets",
      "services",
      "judge 4",
      "secrets",
      "services",
      "judge 4",
      "secrets",
      "services",
      "judge 4",
    ]);
  });

  it("in any order and paging, every annotated Service is judged once, never beside another's Secret; in key order each Secret reaches a Service naming it", async () => {
    const name = fc.constantFrom("a", "b", "c", "a-b", "a-b-c", "b0");
    const arb = fc.record({
      services: fc.uniqueArray(
        fc.record({ namespace: name, name, secret: fc.option(name, { nil: undefined }) }),
        {
          selector: (s) => `${s.namespace}/${s.name}`,
          maxLength: 30,
        },
      ),
      secrets: fc.uniqueArray(fc.record({ namespace: name, name }), {
        selector: (s) => `${s.namespace}/${s.name}`,
        maxLength: 30,
      }),
      size: fc.integer({ min: 1, max: 7 }),
      ordered: fc.boolean(),
      seed: fc.integer(),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ services, secrets, size, ordered, seed }) => {
        const shuffle = <T>(xs: T[]) =>
          xs
            .map((x, i) => [x, (Math.imul(i + 1, 2654435761) ^ seed) >>> 0] as const)
            .sort((p, q) => p[1] - q[1])
            .map(([x]) => x);
        const svcs = ordered ? keyOrder(services) : shuffle(services);
        const secs = ordered ? keyOrder(secrets) : shuffle(secrets);
        const { judged, stats } = await join(svcs, secs, size);
        const annotated = services.filter((s) => s.secret);
        assert.equal(judged.length, annotated.length);
        assert.equal(new Set(judged.map(([s]) => s)).size, annotated.length);
        for (const [svc, secret] of judged)
          if (secret) assert.deepEqual([secret.namespace, secret.name], [svc.namespace, svc.secret]);
        if (ordered) {
          assert.equal(stats.inOrder, true);
          for (const secret of secrets) {
            const naming = judged.filter(
              ([s]) => s.namespace === secret.namespace && s.secret === secret.name,
            );
            if (naming.length > 0)
              assert.ok(
                naming.some(([, s]) => s === secret),
                `${secret.namespace}/${secret.name} reached none of its Services`,
              );
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
