// inject-apiservice: keeps the service CA bundle in annotated APIServices current.
import { injectorFunction } from "../../shared/inject/function.ts";

export default injectorFunction("inject-apiservice", ["APIService"], "apiservices");
