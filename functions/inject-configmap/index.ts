// inject-configmap: keeps the service CA bundle in annotated objects of its kind current.
import { injectorFunction } from "../../shared/inject/function.ts";
import { configMapTarget } from "../../shared/inject/targets.ts";

export default injectorFunction(
  "inject-configmap",
  [configMapTarget],
  [
    { kind: "ApiServerSource", name: "configmaps" },
    { kind: "PingSource", name: "inject-configmap-hourly" },
  ],
);
