// inject-crd: keeps the service CA bundle in annotated objects of its kind current.
import type { AnyFunctionDefinition } from "../../shared/runtime/define.ts";
import { injectorFunction } from "../../shared/inject/function.ts";
import { crdTarget } from "../../shared/inject/targets.ts";

export default {
  ...injectorFunction("inject-crd", [crdTarget]),
  // Who may send it events (infra/base/sources/).
  sources: [
    { kind: "ApiServerSource", name: "crds" },
    { kind: "ApiServerSource", name: "ca-bundle-to-inject-crd" },
    { kind: "PingSource", name: "inject-crd-hourly" },
  ],
} satisfies AnyFunctionDefinition;
