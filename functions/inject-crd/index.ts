// inject-crd: keeps the service CA bundle in annotated CRDs' conversion webhooks current.
import { injectorFunction } from "../../shared/inject/function.ts";

export default injectorFunction("inject-crd", ["CustomResourceDefinition"], "crds");
