// inject-configmap: keeps the service CA bundle in annotated objects of its kind current.
import type { AnyFunctionDefinition } from "../../shared/runtime/define.ts";
import { injectorFunction } from "../../shared/inject/function.ts";
import { configMapTarget } from "../../shared/inject/targets.ts";

export default {
  ...injectorFunction("inject-configmap", [configMapTarget]),
  // Who may send it events (infra/base/sources/).
  sources: [
    { kind: "ApiServerSource", name: "configmaps" },
    { kind: "PingSource", name: "inject-configmap-hourly" },
  ],
} satisfies AnyFunctionDefinition;
