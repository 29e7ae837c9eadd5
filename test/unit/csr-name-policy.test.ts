// Which names a CSR's requester may claim: its own namespace's Services, what CSR_ALLOWED_NAMES grants, and never
// the names nobody gets (the signer applies this to every request, approved by a human or not).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  csrAllowedNames,
  neverCertified,
  refusedNames,
  type Requester,
} from "../../shared/csr-signer/policy.ts";

const tenant = { username: "system:serviceaccount:shop:web", groups: ["system:serviceaccounts"] };
const refused = (names: string[], who: Requester = tenant, rules = csrAllowedNames.parse("[]")) =>
  refusedNames(names, who, rules).map((r) => r.name);

describe("the CSR signer's name policy", () => {
  it("a ServiceAccount may claim its own namespace's Service names and headless wildcards", () => {
    assert.deepEqual(
      refused(["web.shop.svc", "web.shop.svc.cluster.local", "*.db.shop.svc", "*.db.shop.svc.cluster.local"]),
      [],
    );
  });

  it("a namespace-admin tenant gets none of the names of the hostile-tenant report", () => {
    const hostile = [
      "kubernetes.default.svc",
      "kubernetes.default.svc.cluster.local",
      "kubernetes.default",
      "*.kube-system.svc",
      "*.cluster.local",
      "*.svc.cluster.local",
      "*.shop.svc",
      "*.com",
      "foo.com",
      "localhost",
      "a.localhost",
      "db.other.svc",
      "db.other.svc.cluster.local",
      "10.96.0.1",
      "web",
      "web.shop",
      "a.web.shop.svc",
    ];
    assert.deepEqual(refused(hostile), hostile);
  });

  it("says why, per name", () => {
    const why = Object.fromEntries(
      refusedNames(["localhost", "*.com", "*.kube-system.svc", "db.other.svc"], tenant, []).map((r) => [
        r.name,
        r.why,
      ]),
    );
    assert.match(why.localhost!, /localhost is never certified/);
    assert.match(why["*.com"]!, /whole top-level domain/);
    assert.match(why["*.kube-system.svc"]!, /only wildcards in the cluster's domain/);
    assert.match(why["db.other.svc"]!, /not a Service name of shop/);
  });

  it("anyone who is not a ServiceAccount gets nothing unless a rule allows it", () => {
    const alice = { username: "alice", groups: ["system:authenticated"] };
    assert.deepEqual(refused(["web.shop.svc"], alice), ["web.shop.svc"]);
    assert.match(refusedNames(["web.shop.svc"], alice, [])[0]!.why, /alice is not a ServiceAccount/);
    const rules = csrAllowedNames.parse(
      JSON.stringify([
        { users: ["alice"], namespaces: ["shop"] },
        { groups: ["platform"], names: ["*.example.internal", "api.example.com"] },
        { serviceAccountNamespaces: ["edge"], names: ["web", "web.shop"] },
      ]),
    );
    assert.deepEqual(refused(["web.shop.svc", "*.web.shop.svc", "db.other.svc"], alice, rules), [
      "db.other.svc",
    ]);
    const platform = { username: "bob", groups: ["platform"] };
    assert.deepEqual(
      refused(
        [
          "a.example.internal",
          "*.example.internal",
          "api.example.com",
          "a.b.example.internal",
          "x.example.com",
        ],
        platform,
        rules,
      ),
      ["a.b.example.internal", "x.example.com"],
    );
    const edge = { username: "system:serviceaccount:edge:proxy" };
    assert.deepEqual(refused(["web", "web.shop", "proxy.edge.svc", "web.shop.svc"], edge, rules), [
      "web.shop.svc",
    ]);
    // A rule never lifts what nobody gets.
    assert.deepEqual(refused(["localhost", "kubernetes.default.svc"], alice, rules), [
      "localhost",
      "kubernetes.default.svc",
    ]);
  });

  it("CSR_ALLOWED_NAMES is validated: a bad configuration stops the function at start", () => {
    for (const bad of [
      "not json",
      "{}",
      '[{"names": ["a.example.com"]}]',
      '[{"users": ["alice"]}]',
      '[{"users": ["alice"], "names": ["*.com"]}]',
      '[{"users": ["alice"], "names": ["localhost"]}]',
      '[{"users": ["alice"], "names": ["10.0.0.1"]}]',
      '[{"users": ["alice"], "names": ["Upper.example.com"]}]',
      '[{"users": ["alice"], "names": ["a.*.example.com"]}]',
      '[{"users": ["alice"], "namespaces": ["Not_A_Namespace"]}]',
      '[{"users": ["alice"], "names": ["a.example.com"], "typo": true}]',
    ])
      assert.equal(csrAllowedNames.safeParse(bad).success, false, bad);
    assert.deepEqual(csrAllowedNames.parse(undefined), []);
  });

  it("never: reserved names and over-broad wildcards, whatever is configured", () => {
    for (const n of [
      "localhost",
      "*.localhost",
      "127.0.0.1",
      "kubernetes.default.svc",
      "*.com",
      "*.svc",
      "*.ns.svc",
    ])
      assert.ok(neverCertified(n), n);
    for (const n of ["*.web.ns.svc", "*.web.ns.svc.cluster.local", "*.example.com", "web.ns.svc"])
      assert.equal(neverCertified(n), undefined, n);
  });
});
