// inject-configmap: keeps the service CA bundle (key service-ca.crt) in annotated ConfigMaps current.
import { injectorFunction } from "../../shared/inject/function.ts";

export default injectorFunction("inject-configmap", ["ConfigMap"], "configmaps");
