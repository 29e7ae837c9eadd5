// sign-csr: the signer for CertificateSigningRequests of signerName service-ca.dev/serving. Approved requests get
// a serving certificate from the service CA; with AUTO_APPROVE, ServiceAccounts' requests are approved or denied.
import * as z from "zod";
import { defineFunction } from "../../shared/host/define.ts";
import { apiServerEvent, pingEvent } from "../../shared/events/knative.ts";
import { openCaStore } from "../../shared/ca-store/store.ts";
import { caStoreConfigShape } from "../../shared/ca-store/layout.ts";
import { CSR_MIN_SECONDS } from "../../shared/pki/csr.ts";
import { DAY_MS, SERVING_VALIDITY_DAYS } from "../../shared/pki/index.ts";
import { csrAllowedNames } from "../../shared/csr-signer/policy.ts";
import { eventComponent, SIGNER_NAME } from "../../shared/names.ts";
import { reconcileCsr, sweepCsrs, type CsrSignerDeps } from "../../shared/csr-signer/reconcile.ts";
import { transient } from "../../shared/runtime/errors.ts";
import { issuanceMetrics } from "../../shared/serving-cert/metrics.ts";

export default defineFunction({
  name: "sign-csr",
  // Who may send it events (infra/base/sources/).
  sources: [{ kind: "ApiServerSource", name: "certificatesigningrequests" }],
  description:
    `signs approved CertificateSigningRequests of signerName ${SIGNER_NAME} with the service CA when the ` +
    "requester may claim every name (a Failed condition and an Event for a request it will not sign); optionally " +
    "approves ServiceAccounts' requests for their own Services; a ping sweeps every request that still needs a step",
  config: {
    ...caStoreConfigShape,
    CSR_MAX_EXPIRATION_SECONDS: z.coerce
      .number()
      .int()
      .min(CSR_MIN_SECONDS)
      .max(3650 * 24 * 3600)
      .default((SERVING_VALIDITY_DAYS * DAY_MS) / 1000)
      .describe(
        "longest certificate granted (spec.expirationSeconds is capped to it); also the lifetime when a CSR asks none",
      ),
    AUTO_APPROVE: z
      .stringbool()
      .default(false)
      .describe(
        "approve a ServiceAccount's CSR whose names are Services of its namespace it may update; deny its other CSRs",
      ),
    CSR_ALLOWED_NAMES: csrAllowedNames.describe(
      'JSON rules granting names beyond a ServiceAccount\'s own namespace\'s Services: [{"users"|"groups"|"serviceAccountNamespaces": [...], "namespaces": [...], "names": ["api.example.internal", "*.example.internal"]}]; nobody else gets any name',
    ),
  },
  event: z.union([
    pingEvent,
    apiServerEvent([{ apiVersion: "certificates.k8s.io/v1", kind: "CertificateSigningRequest" }]),
  ]),
  init(ctx): CsrSignerDeps {
    const { config, kube, clock, log, metrics } = ctx;
    return {
      kube: kube(),
      ca: openCaStore(ctx),
      clock,
      log,
      component: eventComponent("sign-csr"),
      autoApprove: config.AUTO_APPROVE,
      maxSeconds: config.CSR_MAX_EXPIRATION_SECONDS,
      allowedNames: config.CSR_ALLOWED_NAMES,
      metrics: issuanceMetrics(metrics),
    };
  },
  async handle(event, { state, log }) {
    const deps = { ...state, log };
    if (event.source === "ping") {
      const sweep = await sweepCsrs(deps);
      if (sweep.errors > 0) throw transient(`${sweep.errors} CSR(s) could not be handled; the rest are done`);
      return { outcome: "swept", ...sweep };
    }
    if (event.action === "delete") return { outcome: "gone" };
    return { ...(await reconcileCsr(deps, event.ref.name)) };
  },
});
