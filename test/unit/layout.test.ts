// The layout in README.md ("Layout") as a check: every import under shared/, functions/, scripts/, bench/ and dev/
// is parsed, and an arrow against the direction (functions → host → domain → kube / pki → runtime; names.ts a
// leaf) fails the test, naming the file, the import and the rule.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import ts from "typescript";

const root = join(import.meta.dirname, "../..");

/** Domain folders, and which other domains each may use (the CA is everyone's; csr-signer reuses DNS rules). */
const domains: Record<string, string[]> = {
  "ca-store": [],
  "serving-cert": ["ca-store"],
  inject: ["ca-store", "events"],
  distribution: ["ca-store"],
  "csr-signer": ["ca-store", "serving-cert"],
  events: [],
};

interface Import {
  from: string;
  /** repository-relative path for a relative import, else the package name */
  to: string;
  typeOnly: boolean;
}

/** Where a file lives in the layout: "runtime", "kube", "pki", "host", "names", a domain, "function:<name>", ... */
function roomOf(path: string): string | undefined {
  const parts = path.split("/");
  if (parts[0] === "shared") {
    if (parts[1] === "names.ts") return "names";
    return parts[1];
  }
  if (parts[0] === "functions") return `function:${parts[1]}`;
  if (["scripts", "bench", "dev", "test", "plugin"].includes(parts[0]!)) return parts[0];
  return undefined;
}

/** The rule an import breaks, if any. */
export function breaks(imp: Import): string | undefined {
  const from = roomOf(imp.from);
  const relativeImport = imp.to.includes("/") && !imp.to.startsWith("@") && !imp.to.startsWith("node:");
  const to = relativeImport ? roomOf(imp.to) : undefined;
  const isDomain = (room: string | undefined) => room !== undefined && room in domains;
  if (!relativeImport) {
    const pkg = imp.to;
    if (pkg === "@kubernetes/client-node" && (from === "runtime" || from === "pki" || from === "names"))
      return `shared/${from} knows nothing of Kubernetes`;
    const inCode = from !== undefined && (from in domains || from === "host" || from.startsWith("function:"));
    if (pkg === "@kubernetes/client-node" && inCode && !imp.typeOnly)
      return "only shared/kube calls @kubernetes/client-node (its types are fine)";
    if (
      (pkg === "express" || pkg === "prom-client" || pkg.startsWith("node:http")) &&
      (from === "pki" || from === "names")
    )
      return `shared/${from} does no I/O`;
    return undefined;
  }
  if (from === to) {
    if (from?.startsWith("function:") && imp.from.split("/")[1] !== imp.to.split("/")[1])
      return "no function imports another function";
    return undefined;
  }
  switch (from) {
    case "names":
      return "shared/names.ts is a leaf: it imports nothing";
    case "runtime":
      return to === "names"
        ? undefined
        : "shared/runtime imports only itself and names.ts (no kube, domain or host)";
    case "pki":
      return to === "names" ? undefined : "shared/pki is pure: it imports only itself and names.ts";
    case "kube":
      return to === "runtime" || to === "names"
        ? undefined
        : "shared/kube imports only the runtime and names.ts";
    case "host":
      return to === "runtime" || to === "kube" || to === "names"
        ? undefined
        : "shared/host joins the runtime and kube; it imports no domain and no function";
  }
  if (isDomain(from)) {
    if (to === "runtime" || to === "kube" || to === "pki" || to === "names") return undefined;
    if (isDomain(to))
      return domains[from!]!.includes(to!) ? undefined : `shared/${from} may not import shared/${to}`;
    return `shared/${from} imports no host, function or tool (only runtime, kube, pki, names and its allowed domains)`;
  }
  if (from?.startsWith("function:")) {
    if (to?.startsWith("function:")) return "no function imports another function";
    if (to === "scripts" || to === "bench" || to === "dev" || to === "test" || to === "plugin")
      return "a function imports only shared/";
    return undefined;
  }
  // The test runner (scripts/test.ts) is the one script that is about test/: it may start test/support's cluster.
  if (
    (from === "scripts" || from === "bench" || from === "dev") &&
    to === "test" &&
    imp.from !== "scripts/test.ts"
  )
    return `${from}/ uses dev/, never test/`;
  return undefined;
}

function importsOf(path: string, text: string): Import[] {
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: Import[] = [];
  const add = (specifier: string, typeOnly: boolean) => {
    const to = specifier.startsWith(".") ? normalize(join(dirname(path), specifier)) : specifier;
    found.push({ from: path, to, typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier.text, typeOnly);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      add(node.moduleSpecifier.text, node.isTypeOnly);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      add(node.arguments[0].text, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** The API clients on a Kube handle: only shared/kube calls them (the domains call kube/'s functions). */
const apiClientUse = /\bkube(\(\))?\.(core|objects|certificates|authentication|authorization|config)\b/g;

/** Every broken rule in `files` (path → source text). */
export function violations(files: Record<string, string>): string[] {
  return Object.entries(files).flatMap(([path, text]) => {
    const imports = importsOf(path, text).flatMap((imp) => {
      const rule = breaks(imp);
      return rule ? [`${path} imports ${imp.to}: ${rule}`] : [];
    });
    const room = roomOf(path);
    const code = room !== undefined && (room in domains || room === "host" || room.startsWith("function:"));
    const calls = code
      ? [...text.matchAll(apiClientUse)].map(
          (m) => `${path} uses ${m[0]}: only shared/kube calls the API clients; use its functions`,
        )
      : [];
    return [...imports, ...calls];
  });
}

describe("layout", () => {
  it("every import points down the layout (README.md, Layout)", () => {
    const files = Object.fromEntries(
      ["shared", "functions", "scripts", "bench", "dev"]
        .flatMap(sourceFiles)
        .map((p) => [p, readFileSync(join(root, p), "utf8")]),
    );
    assert.ok(Object.keys(files).length > 60, "the sources were found");
    assert.deepEqual(violations(files), []);
  });

  it("can fail: each kind of arrow against the direction is reported", () => {
    const bad = {
      "shared/runtime/x.ts": `import { createKube } from "../kube/client.ts";\nimport type { CaStore } from "../ca-store/store.ts";\nimport { runHost } from "../host/run-host.ts";`,
      "shared/pki/x.ts": `import { Clock } from "../runtime/clock.ts";\nimport { readOptional } from "../kube/objects.ts";`,
      "shared/kube/x.ts": `import { scanServices } from "../serving-cert/scan.ts";`,
      "shared/inject/x.ts": `import { distributeEverywhere } from "../distribution/reconcile.ts";\nimport * as k8s from "@kubernetes/client-node";`,
      "shared/names.ts": `import { z } from "../runtime/config.ts";`,
      "functions/expiry-scan/index.ts": `import def from "../rotate-ca/index.ts";`,
      "scripts/start.ts": `import { startLocalSystem } from "../test/support/identities.ts";`,
      "bench/scan.ts": `import { x } from "../test/helpers.ts";`,
      "shared/serving-cert/y.ts": `await deps.kube.core.readNamespacedSecret({ namespace, name });`,
    };
    const found = violations(bad);
    assert.equal(found.length, 13, found.join("\n"));
    const good = {
      "shared/serving-cert/x.ts": `import type * as k8s from "@kubernetes/client-node";\nimport { CaStore } from "../ca-store/store.ts";\nimport { annotations } from "../names.ts";`,
      "functions/a/index.ts": `import { defineFunction } from "../../shared/host/define.ts";\nimport { x } from "./helper.ts";`,
      "scripts/start.ts": `import { startLocalSystem } from "../dev/local-system/local-system.ts";`,
    };
    assert.deepEqual(violations(good), []);
  });
});
