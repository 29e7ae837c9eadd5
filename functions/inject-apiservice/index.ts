// inject-apiservice: keeps the service CA bundle in annotated objects of its kind current.
import { injectorFunction } from "../../shared/inject/function.ts";
import { apiServiceTarget } from "../../shared/inject/targets.ts";

export default injectorFunction(
  "inject-apiservice",
  [apiServiceTarget],
  [
    { kind: "ApiServerSource", name: "apiservices" },
    { kind: "ApiServerSource", name: "ca-bundle-to-inject-apiservice" },
    { kind: "PingSource", name: "inject-apiservice-hourly" },
  ],
);
