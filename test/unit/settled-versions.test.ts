// The memory that lets an echo of the function's own write cost one read: exact versions only, bounded.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CREATE_ECHO_MS, SettledVersions } from "../../shared/serving-cert/settled-versions.ts";

describe("SettledVersions", () => {
  it("knows an object only at the exact version it settled", () => {
    const settled = new SettledVersions();
    settled.settle("Secret", "shop", "web-tls", "41");
    assert.equal(settled.isSettled("Secret", "shop", "web-tls", "41"), true);
    assert.equal(settled.isSettled("Secret", "shop", "web-tls", "42"), false, "changed since");
    assert.equal(settled.isSettled("Secret", "shop", "web-tls", undefined), false, "gone");
    assert.equal(settled.isSettled("Service", "shop", "web-tls", "41"), false, "another kind");
    assert.equal(settled.isSettled("Secret", "other", "web-tls", "41"), false, "another namespace");
    settled.settle("Secret", "shop", "web-tls", "43");
    assert.equal(settled.isSettled("Secret", "shop", "web-tls", "41"), false, "a later write replaces it");
    settled.forget("Secret", "shop", "web-tls");
    assert.equal(settled.isSettled("Secret", "shop", "web-tls", "43"), false);
    settled.settle("Secret", "shop", "web-tls", undefined);
    assert.equal(
      settled.isSettled("Secret", "shop", "web-tls", undefined),
      false,
      "no version, nothing known",
    );
  });

  it("forgets the least recently settled first once full", () => {
    const settled = new SettledVersions(2);
    settled.settle("Service", "a", "x", "1");
    settled.settle("Service", "a", "y", "2");
    settled.settle("Service", "a", "x", "3"); // x is the most recent now
    settled.settle("Service", "a", "z", "4");
    assert.equal(settled.isSettled("Service", "a", "y", "2"), false, "the oldest went");
    assert.equal(settled.isSettled("Service", "a", "x", "3"), true);
    assert.equal(settled.isSettled("Service", "a", "z", "4"), true);
  });

  it("takes one add event for the echo of its own create, a minute at most, and none after a delete", () => {
    const settled = new SettledVersions();
    settled.created("shop", "web-tls", 1_000);
    assert.equal(settled.takeCreateEcho("shop", "other-tls", 1_001), false, "another Secret");
    assert.equal(settled.takeCreateEcho("shop", "web-tls", 1_001), true, "the echo");
    assert.equal(settled.takeCreateEcho("shop", "web-tls", 1_002), false, "once per create");

    settled.created("shop", "web-tls", 1_000);
    settled.forget("Secret", "shop", "web-tls"); // its delete event
    assert.equal(settled.takeCreateEcho("shop", "web-tls", 1_001), false, "re-created by someone: judged");

    settled.created("shop", "web-tls", 1_000);
    assert.equal(settled.takeCreateEcho("shop", "web-tls", 1_000 + CREATE_ECHO_MS + 1), false, "too late");
  });
});
