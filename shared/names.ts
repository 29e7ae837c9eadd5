// Every name this system shares with users and the cluster, defined once (as the operator's api.go): annotations,
// labels, data keys, field managers, the signer name and where the CA lives. A leaf: it imports nothing, and any
// module (runtime, pki, kube, a domain, a function, plugin/, dev/, tests) may import it.

const beta = "service.beta.openshift.io/";
const alpha = "service.alpha.openshift.io/";
/** This system's own bookkeeping, beside the OpenShift-compatible annotations. */
const own = "service-ca-functions.dev/";

/** The namespace infra/ installs the system in: the CA's default namespace, and where the event sources live. */
export const SYSTEM_NAMESPACE = "service-ca";

/** Where the CA lives unless configured otherwise (CA_NAMESPACE, CA_SECRET_NAME, CA_BUNDLE_CONFIGMAP_NAME). */
export const caDefaults = {
  namespace: SYSTEM_NAMESPACE,
  secretName: "signing-key",
  bundleConfigMapName: "signing-cabundle",
} as const;

export const annotations = {
  // Services and their serving Secrets (OpenShift-compatible names).
  secretName: `${beta}serving-cert-secret-name`,
  secretNameAlpha: `${alpha}serving-cert-secret-name`,
  keyAlgorithm: `${beta}serving-cert-key-algorithm`,
  signedBy: `${beta}serving-cert-signed-by`,
  error: `${beta}serving-cert-generation-error`,
  errorNum: `${beta}serving-cert-generation-error-num`,
  originName: `${beta}originating-service-name`,
  originUid: `${beta}originating-service-uid`,
  originUidAlpha: `${alpha}originating-service-uid`,
  expiry: `${beta}expiry`,
  /** Opt-in for the OpenShift annotation: also `<svc>` and `<svc>.<ns>` as DNS names. */
  shortNames: `${beta}serving-cert-short-names`,
  /** Alauda's variant (cert-manager + Kyverno): its Secrets always carry the two short names. */
  secretNameAlauda: "service.alauda.io/serving-cert-secret-name",
  /** What the recorded failure is about (failures.ts causeOf): the same cause seen again is not counted again. */
  failureCause: `${own}serving-cert-failure-cause`,
  /** A Service given up on is re-checked by the scan from this time on (ISO 8601), with backoff. */
  recheckAfter: `${own}serving-cert-recheck-after`,
  recheckIntervalSeconds: `${own}serving-cert-recheck-interval-seconds`,
  // Bundle injection: the opt-in (ConfigMaps and APIServices also honour the alpha one).
  injectCaBundle: `${beta}inject-cabundle`,
  injectCaBundleAlpha: `${alpha}inject-cabundle`,
  // The CA Secret.
  rotationReason: `${own}last-rotation-reason`,
  rotatedAt: `${own}rotated-at`,
  // Distributed copies of the bundle.
  distributedFrom: `${own}distributed-from`,
} as const;

/** Everything this system writes (the CA Secret, the published bundle, serving Secrets). */
export const MANAGED_BY_LABEL = { "app.kubernetes.io/managed-by": "service-ca-functions" };
/**
 * The CA Secret is ours but no serving certificate: its own label lets the serving-secrets event source leave it
 * out (`notin`), so a CA write does not reach issue-serving-cert as if it were a serving Secret.
 */
export const CA_SECRET_LABELS = { ...MANAGED_BY_LABEL, "app.kubernetes.io/component": "signing-ca" };
/** Every copy distribute-ca makes carries it; an object without it is never touched. */
export const DISTRIBUTED_LABEL = `${own}distributed`;
/** The functions' workloads (infra/overlays/eventing-only and what `kubectl service-ca status` lists). */
export const FUNCTION_COMPONENT_LABEL = { "app.kubernetes.io/component": "function" };

/** Data keys. */
export const dataKeys = {
  /** A kubernetes.io/tls Secret's certificate (the CA's, a serving certificate's) and key. */
  tlsCert: "tls.crt",
  tlsKey: "tls.key",
  /** The CA Secret's and the published ConfigMap's bundle: every CA certificate a client should trust now. */
  caBundle: "ca-bundle.crt",
  /** The CA Secret: certificates appended to every serving certificate after a rotation (the bridge). */
  intermediate: "intermediate-ca.crt",
  /** The CA Secret: the CA this one replaced, kept for the record and for trust until it expires. */
  previousCa: "previous-ca.crt",
  /** Where an injected ConfigMap, and a distributed ConfigMap copy, hold the bundle. */
  injectedBundle: "service-ca.crt",
  /** The distributed Secret copy's key, as cert-manager + Kyverno's variant mounts it. */
  copySecretBundle: "ca.crt",
} as const;

/** The CA Secret's keys, by role. */
export const caKeys = {
  cert: dataKeys.tlsCert,
  key: dataKeys.tlsKey,
  bundle: dataKeys.caBundle,
  chain: dataKeys.intermediate,
  previous: dataKeys.previousCa,
} as const;

/** Names of distribute-ca's copies. */
export const copyNames = { configMap: "service-ca-bundle", secret: "service-root-ca" } as const;

/** Field managers of this system's writes (injection has its own, so a user's `kubectl apply` sees who owns what). */
export const FIELD_MANAGER = "service-ca-functions";
export const INJECTOR_FIELD_MANAGER = "service-ca-functions-injector";

/** The CertificateSigningRequest signerName sign-csr signs for. */
export const SIGNER_NAME = "service-ca.dev/serving";

/** The audience a function's sources ask tokens for (infra/ sets it as every source's spec.sink.audience). */
export const eventAudience = (functionName: string) => `${own}${functionName}`;

/** The Event component (and reporting controller) of a function's Events. */
export const eventComponent = (functionName: string) => `service-ca-functions/${functionName}`;
