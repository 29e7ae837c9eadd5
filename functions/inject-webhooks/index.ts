// inject-webhooks: keeps the service CA bundle in every webhook of annotated webhook configurations.
import { injectorFunction } from "../../shared/inject/function.ts";
import { mutatingWebhookTarget, validatingWebhookTarget } from "../../shared/inject/targets.ts";

export default injectorFunction(
  "inject-webhooks",
  [mutatingWebhookTarget, validatingWebhookTarget],
  [
    { kind: "ApiServerSource", name: "webhooks" },
    { kind: "ApiServerSource", name: "ca-bundle-to-inject-webhooks" },
    { kind: "PingSource", name: "inject-webhooks-hourly" },
  ],
);
