// inject-crd: keeps the service CA bundle in annotated objects of its kind current.
import { injectorFunction } from "../../shared/inject/function.ts";
import { crdTarget } from "../../shared/inject/targets.ts";

export default injectorFunction(
  "inject-crd",
  [crdTarget],
  [
    { kind: "ApiServerSource", name: "crds" },
    { kind: "ApiServerSource", name: "ca-bundle-to-inject-crd" },
    { kind: "PingSource", name: "inject-crd-hourly" },
  ],
);
