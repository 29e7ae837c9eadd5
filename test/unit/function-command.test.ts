// Each function starts with the Node flags its code cache was written under: its container in infra/ runs
// commandOf(name), through its own command or the image's entrypoint. Otherwise V8 rejects the cache and every start
// compiles the bundle anew (and the issuer runs on tiers its memory was not measured with).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { knativeServices } from "../../dev/manifests/eventing-only.ts";
import { commandOf, imageEntrypoint } from "../../dev/image/service-image.ts";
import { functionNames } from "../../shared/host/functions.ts";

describe("each function's command in infra/", () => {
  const ksvcs = knativeServices();
  for (const name of functionNames())
    it(`${name} starts as its code cache was written`, () => {
      const ksvc = ksvcs.find((k) => k.metadata.name === name);
      assert.ok(ksvc, `infra/base/functions has a Knative Service ${name}`);
      const container = ksvc.spec.template.spec.containers[0]!;
      const command = (container.command as string[] | undefined) ?? imageEntrypoint;
      assert.deepEqual(command, commandOf(name));
      assert.deepEqual(container.args, [name]);
    });
});
