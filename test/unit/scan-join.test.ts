// The scan's join of Services and our Secrets a namespace at a time (shared/serving-cert/scan.ts byNamespace): lists
// come in the API server's key order, where namespace "a-b" precedes "a"; what is held is one namespace.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type * as k8s from "@kubernetes/client-node";
import { byNamespace } from "../../shared/serving-cert/scan.ts";
import { annotations } from "../../shared/names.ts";

const service = (namespace: string, name: string, secret?: string): k8s.V1Service => ({
  metadata: { namespace, name, ...(secret ? { annotations: { [annotations.secretName]: secret } } : {}) },
  spec: {},
});
const secret = (namespace: string, name: string): k8s.V1Secret => ({ metadata: { namespace, name } });

/** The items in turn, recording how many were taken. */
function listed<T>(items: T[]): { iterator: AsyncIterator<T>; taken: () => number } {
  let taken = 0;
  const iterator = (async function* () {
    for (const item of items) {
      taken++;
      yield item;
    }
  })();
  return { iterator, taken: () => taken };
}

const named = (pairs: readonly (readonly [k8s.V1Service, k8s.V1Secret | undefined])[]) =>
  pairs.map(([svc, s]) => `${svc.metadata!.namespace}/${svc.metadata!.name}→${s?.metadata?.name ?? "none"}`);

describe("the scan's join by namespace", () => {
  it("pairs each annotated Service with its Secret in key order ('a-b/' before 'a/'), one namespace at a time", async () => {
    const services = listed([
      service("a-b", "x", "x-tls"),
      service("a-b", "plain"),
      service("a", "x", "x-tls"),
      service("a", "y", "y-tls"),
      service("b", "z", "z-tls"),
    ]);
    const secrets = listed([
      secret("a-b", "x-tls"),
      secret("a", "x-tls"),
      secret("a", "orphan"),
      secret("b", "z-tls"),
    ]);
    const seen: string[][] = [];
    const counts: number[] = [];
    const read: Array<[number, number]> = [];
    for await (const joined of byNamespace(services.iterator, secrets.iterator)) {
      seen.push(named(joined.pairs));
      counts.push(joined.services);
      read.push([services.taken(), secrets.taken()]);
    }
    assert.deepEqual(seen, [["a-b/x→x-tls"], ["a/x→x-tls", "a/y→none"], ["b/z→z-tls"]]);
    assert.deepEqual(counts, [2, 2, 1]);
    // Each namespace comes out before the next one's Secrets are read (one item of lookahead at most).
    assert.deepEqual(read[0], [3, 2]);
    assert.deepEqual(read[1], [5, 4]);
  });

  it("two Services naming one Secret both come out with it; a Service with no Secret of ours comes out without", async () => {
    const joined = [];
    for await (const j of byNamespace(
      listed([service("n", "one", "shared"), service("n", "two", "shared"), service("n", "three", "gone")])
        .iterator,
      listed([secret("n", "shared")]).iterator,
    ))
      joined.push(...named(j.pairs));
    assert.deepEqual(joined.sort(), ["n/one→shared", "n/three→none", "n/two→shared"]);
  });

  it("out of order, every Service still comes out once; a Secret passed by only goes unmatched", async () => {
    const services = [service("b", "s1", "t1"), service("a", "s2", "t2"), service("b", "s3", "t3")];
    const secrets = [secret("a", "t2"), secret("b", "t1"), secret("b", "t3")];
    const joined: string[] = [];
    for await (const j of byNamespace(listed(services).iterator, listed(secrets).iterator))
      joined.push(...named(j.pairs));
    assert.deepEqual(joined.sort(), ["a/s2→none", "b/s1→t1", "b/s3→none"]);
  });

  it("no Services: no Secret is read", async () => {
    const secrets = listed([secret("a", "x")]);
    for await (const _ of byNamespace(listed<k8s.V1Service>([]).iterator, secrets.iterator)) assert.fail();
    assert.equal(secrets.taken(), 0);
  });
});
