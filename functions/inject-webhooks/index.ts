// inject-webhooks: keeps the service CA bundle in every webhook of annotated webhook configurations.
import { injectorFunction } from "../../shared/inject/function.ts";

export default injectorFunction(
  "inject-webhooks",
  ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
  "webhooks",
);
