// Pure certificate logic: no Kubernetes, no HTTP, no logging, no state; time is always an argument.
export * from "./keys.ts";
export * from "./authority.ts";
export * from "./serving.ts";
export * from "./inspect.ts";
export * from "./bundle.ts";
export * from "./time.ts";
export { x509 } from "./x509.ts";
export * from "./leaf-check.ts";
