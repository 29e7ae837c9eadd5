// The issuer's copy of the CA: how often it reads, when it must read, and what it hands back to be judged again.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SigningCache, type IssuedFrom } from "../../shared/ca-store/signing-cache.ts";
import type { CaMaterial } from "../../shared/ca-store/store.ts";
import { ManualClock } from "../../shared/runtime/clock.ts";

/** A store whose CA Secret is at `version`, counting reads; a read takes `readMs` of the clock. */
function fakeStore(clock: ManualClock, opts: { readMs?: number } = {}) {
  const store = {
    version: "1",
    reads: 0,
    async signingMaterial(): Promise<CaMaterial> {
      store.reads++;
      const version = store.version;
      clock.advance(opts.readMs ?? 0);
      await Promise.resolve();
      return { resourceVersion: version, name: `ca-${version}` } as CaMaterial;
    },
    isCaSecret: () => false,
  };
  return store;
}

function cacheOver(maxAgeMs: number, opts: { readMs?: number } = {}) {
  const clock = new ManualClock(new Date("2026-12-01T00:00:00Z"));
  const store = fakeStore(clock, opts);
  const replaced: IssuedFrom[][] = [];
  const cache = new SigningCache(store, clock, maxAgeMs);
  cache.whenReplaced((stale) => replaced.push(stale));
  return { clock, store, cache, replaced };
}

const svc = (service: string): IssuedFrom => ({ namespace: "shop", service });

describe("SigningCache", () => {
  it("reads once for many certificates while the copy is young, and again once it is old", async () => {
    const { clock, store, cache } = cacheOver(30_000);
    for (let i = 0; i < 50; i++) await cache.signingMaterial();
    assert.equal(store.reads, 1);
    clock.advance(30_000);
    await cache.signingMaterial();
    assert.equal(store.reads, 2, "at its maximum age");
  });

  it("with a maximum age of 0 reads for every certificate", async () => {
    const { store, cache } = cacheOver(0);
    for (let i = 0; i < 3; i++) await cache.signingMaterial();
    assert.equal(store.reads, 3);
  });

  it("concurrent reads of the current material share one request", async () => {
    const { store, cache } = cacheOver(30_000);
    await Promise.all([cache.currentMaterial(), cache.currentMaterial(), cache.signingMaterial()]);
    assert.equal(store.reads, 1);
  });

  it("hands back what was issued from a CA that a read shows replaced, and nothing a read confirmed", async () => {
    const { clock, store, cache, replaced } = cacheOver(30_000);
    const first = await cache.signingMaterial();
    cache.issued(first, svc("a")); // before the confirming read below started: a later scan sees it
    clock.advance(10);
    await cache.currentMaterial(); // confirms version 1
    assert.equal(cache.pending, 0);
    cache.issued(first, svc("b"));
    cache.issued(first, svc("c"));
    assert.equal(cache.pending, 2);

    store.version = "2"; // rotated: the copy is stale until a read
    assert.equal((await cache.signingMaterial()).resourceVersion, "1", "the copy, until something says");
    const now = await cache.currentMaterial();
    assert.equal(now.resourceVersion, "2");
    assert.deepEqual(replaced, [[svc("b"), svc("c")]]);
    assert.equal(cache.pending, 0);
    assert.equal((await cache.signingMaterial()).resourceVersion, "2", "nothing signs from the old copy now");
  });

  it("an issuance that finishes after a read showed another CA is handed back at once", async () => {
    const { store, cache, replaced } = cacheOver(30_000);
    const old = await cache.signingMaterial();
    store.version = "2";
    await cache.currentMaterial();
    cache.issued(old, svc("late"));
    assert.deepEqual(replaced, [[svc("late")]]);
    assert.equal(cache.pending, 0);
  });

  it("an issuance that ends while the confirming read is under way stays unconfirmed", async () => {
    const { store, cache, replaced } = cacheOver(30_000, { readMs: 5 });
    const material = await cache.signingMaterial();
    const reading = cache.currentMaterial();
    cache.issued(material, svc("during"));
    await reading;
    assert.equal(cache.pending, 1, "the read may have been answered before this write");
    store.version = "2";
    await cache.currentMaterial();
    assert.deepEqual(replaced, [[svc("during")]]);
  });
});
