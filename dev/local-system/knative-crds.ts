// The Knative CRDs infra/ uses, taken from the Knative Go modules the build already downloads, so infra/ is
// checked by Knative's own schemas. With no Knative webhook here, conversion to other versions is removed.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { goModuleDir, KNATIVE_EVENTING, KNATIVE_SERVING } from "../controlplane/go-modules.ts";

/* eslint-disable @typescript-eslint/no-explicit-any -- CRD documents are edited generically */
function onlyStoredVersion(doc: any): any {
  if (doc?.kind !== "CustomResourceDefinition") return doc;
  doc.spec.versions = doc.spec.versions.filter((v: any) => v.storage);
  delete doc.spec.conversion;
  return doc;
}

export async function knativeCrdManifest(dir: string): Promise<string> {
  const eventing = await goModuleDir(KNATIVE_EVENTING);
  const serving = await goModuleDir(KNATIVE_SERVING);
  const files = [
    join(eventing, "config/core/resources/apiserversource.yaml"),
    join(eventing, "config/core/resources/pingsource.yaml"),
    join(serving, "config/core/300-resources/service.yaml"),
  ];
  const docs = [];
  for (const f of files) docs.push(...k8s.loadAllYaml(await readFile(f, "utf8")).map(onlyStoredVersion));
  const out = join(dir, "knative-crds.yaml");
  await writeFile(out, docs.map((d) => k8s.dumpYaml(d)).join("---\n"));
  return out;
}
