// The CA in its Secret: read it, create it exactly once across racing replicas, publish its bundle.
import type * as k8s from "@kubernetes/client-node";
import type { x509 } from "../pki/x509.ts";
import {
  commonName,
  createAuthority,
  crossSign,
  decodeBundle,
  encodeBundle,
  importPrivateKeyPem,
  parseCertificates,
  trustedAt,
  type Signer,
} from "../pki/index.ts";
import { classifyKubeError, isConflict, type Kube } from "../kube/client.ts";
import { apply } from "../kube/objects.ts";
import { createObject, readObject, replaceSecret } from "../kube/core.ts";
import { recordEvent } from "../kube/events.ts";
import { FunctionError } from "../runtime/errors.ts";
import type { Clock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/logger.ts";
import type { Registry } from "prom-client";
import { caExpiryGauge } from "./metrics.ts";
import { caLocationFrom, type CaLocation } from "./layout.ts";
import { annotations, caKeys, CA_SECRET_LABELS, MANAGED_BY_LABEL } from "../names.ts";

export type RotationMode = "overlap" | "replace";

export interface CaMaterial {
  resourceVersion: string;
  secretUid: string;
  signer: Signer;
  /** CN of the current CA: `service-ca-functions-signer@<unix-seconds>`. */
  name: string;
  /** PEM appended after each serving certificate (empty until a rotation). */
  chainPem: string;
  /** Certificates to trust, expired ones already dropped. */
  bundle: x509.X509Certificate[];
  bundlePem: string;
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : "");

export class CaStore {
  private cached?: CaMaterial;
  /** The CA Secret version whose bundle this process has seen published. */
  private publishedVersion?: string;
  // Handlers of one process that find no CA, or an unchecked bundle, at the same moment share one bootstrap (one
  // key generated, one create) and one publication, rather than one each.
  private bootstrapping?: Promise<CaMaterial>;
  private publishing?: { version: string; done: Promise<boolean> };

  constructor(
    private readonly kube: Kube,
    readonly where: CaLocation,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Told of every CA this store loads (for the expiry gauge). */
    private readonly onMaterial: (m: CaMaterial) => void = () => {},
  ) {}

  /** Whether `ref` names the CA's own Secret, which is never a serving certificate Secret. */
  isCaSecret(ref: { kind: string; namespace?: string; name: string }): boolean {
    return (
      ref.kind === "Secret" && ref.namespace === this.where.namespace && ref.name === this.where.secretName
    );
  }

  /** The current signing material, creating the CA if there is none yet. */
  async signingMaterial(): Promise<CaMaterial> {
    const secret = await this.readSecret();
    return secret ? this.published(await this.materialFrom(secret)) : this.sharedBootstrap();
  }

  private sharedBootstrap(): Promise<CaMaterial> {
    this.bootstrapping ??= this.bootstrap().finally(() => {
      this.bootstrapping = undefined;
    });
    return this.bootstrapping;
  }

  /**
   * Once per CA version and process, the bundle is checked to be published: a bootstrap or rotation cut off
   * between its two writes leaves the Secret without a bundle, and redelivered events then find the Secret.
   */
  private async published(material: CaMaterial): Promise<CaMaterial> {
    const version = material.resourceVersion;
    if (this.publishedVersion === version) return material;
    if (this.publishing?.version !== version) {
      const done = this.publishBundle(material).finally(() => {
        if (this.publishing?.done === done) this.publishing = undefined;
      });
      this.publishing = { version, done };
    }
    await this.publishing.done;
    return material;
  }

  /** The current signing material, or undefined while there is no CA: for readers that may not create one. */
  async existingMaterial(): Promise<CaMaterial | undefined> {
    const secret = await this.readSecret();
    return secret ? this.materialFrom(secret) : undefined;
  }

  private readSecret(): Promise<k8s.V1Secret | undefined> {
    const { namespace, secretName: name } = this.where;
    return readObject(this.kube, "Secret", namespace, name, `CA Secret ${namespace}/${name}`);
  }

  private async bootstrap(): Promise<CaMaterial> {
    const now = this.clock.now();
    const ca = await createAuthority({ now });
    const { namespace, secretName: name } = this.where;
    const body: k8s.V1Secret = {
      metadata: { name, namespace, labels: { ...CA_SECRET_LABELS } },
      type: "kubernetes.io/tls",
      data: {
        [caKeys.cert]: b64(ca.certPem),
        [caKeys.key]: b64(ca.keyPem),
        [caKeys.bundle]: b64(ca.certPem),
      },
    };
    try {
      const created = await createObject(this.kube, "Secret", namespace, body);
      const material = await this.materialFrom(created);
      this.log.info("created the service CA", {
        ca: material.name,
        notAfter: ca.cert.notAfter.toISOString(),
      });
      await recordEvent(
        this.kube,
        this.log,
        { apiVersion: "v1", kind: "Secret", namespace, name, uid: created.metadata?.uid },
        {
          type: "Normal",
          reason: "ServiceCACreated",
          message: `created CA ${material.name}, valid until ${ca.cert.notAfter.toISOString()}`,
          component: "service-ca-functions",
          now,
        },
      );
      await this.publishBundle(material);
      return material;
    } catch (err) {
      if (!isConflict(err)) throw classifyKubeError(err, `create CA Secret ${namespace}/${name}`);
      // Another replica won the race: its CA is the CA.
      const winner = await this.readSecret();
      if (!winner) throw new FunctionError("transient", "CA Secret vanished right after a create conflict");
      return this.published(await this.materialFrom(winner));
    }
  }

  private async materialFrom(secret: k8s.V1Secret): Promise<CaMaterial> {
    const rv = secret.metadata?.resourceVersion ?? "";
    if (this.cached && this.cached.resourceVersion === rv) return this.cached;
    const data = secret.data ?? {};
    const certPem = unb64(data[caKeys.cert]);
    const keyPem = unb64(data[caKeys.key]);
    let cert: x509.X509Certificate | undefined;
    let key: CryptoKey;
    try {
      cert = parseCertificates(certPem)[0];
      if (!cert) throw new Error(`${caKeys.cert} holds no certificate`);
      key = await importPrivateKeyPem(keyPem);
    } catch (err) {
      throw new FunctionError(
        "internal",
        `CA Secret ${this.where.namespace}/${this.where.secretName} is unusable: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const bundleSource = unb64(data[caKeys.bundle]) || certPem;
    const bundle = trustedAt(decodeBundle(bundleSource), this.clock.now());
    const material: CaMaterial = {
      resourceVersion: rv,
      secretUid: secret.metadata?.uid ?? "",
      signer: { cert, key },
      name: commonName(cert) ?? cert.subject,
      chainPem: encodeBundle(trustedAt(decodeBundle(unb64(data[caKeys.chain])), this.clock.now())),
      bundle,
      bundlePem: encodeBundle(bundle),
    };
    this.cached = material;
    this.onMaterial(material);
    return material;
  }

  /**
   * Replaces the current CA with a new one (fresh key, fresh subject) in one conditional write. The previous CA
   * stays in the bundle until it expires, and new leaves carry the new CA cross-signed by the previous key, so
   * clients holding either bundle trust certificates from either CA. Returns undefined if another writer
   * changed the Secret first (two racing rotations produce one new CA).
   */
  async rotate(
    reason: string,
    mode: RotationMode = "overlap",
  ): Promise<{ material: CaMaterial; previous: x509.X509Certificate } | undefined> {
    const secret = await this.readSecret();
    if (!secret) {
      await this.sharedBootstrap();
      return undefined;
    }
    const old = await this.materialFrom(secret);
    const now = this.clock.now();
    const next = await createAuthority({ now, predecessor: old.signer.cert });
    // overlap: new leaves are issued by `next`; a client that only trusts `old` follows this bridge to it, and
    // the bundle keeps the previous CA while it is valid (earlier generations drop out here).
    // replace (a compromised key): the previous CA is trusted no more, at once; no bridge.
    const chain =
      mode === "overlap"
        ? [
            await crossSign({
              subject: next.cert,
              issuer: old.signer,
              notAfter: old.signer.cert.notAfter,
              now,
            }),
          ]
        : [];
    const bundle = mode === "overlap" ? trustedAt([next.cert, old.signer.cert], now) : [next.cert];
    const body: k8s.V1Secret = {
      ...secret,
      metadata: {
        ...secret.metadata,
        labels: { ...(secret.metadata?.labels ?? {}), ...CA_SECRET_LABELS },
        annotations: {
          ...(secret.metadata?.annotations ?? {}),
          [annotations.rotationReason]: reason,
          [annotations.rotatedAt]: now.toISOString(),
        },
      },
      data: {
        [caKeys.cert]: b64(next.certPem),
        [caKeys.key]: b64(next.keyPem),
        [caKeys.bundle]: b64(encodeBundle(bundle)),
        [caKeys.chain]: b64(encodeBundle(chain)),
        [caKeys.previous]: b64(encodeBundle([old.signer.cert])),
      },
    };
    const { namespace, secretName: name } = this.where;
    let written: k8s.V1Secret;
    try {
      // metadata.resourceVersion from the read makes this conditional.
      written = await replaceSecret(this.kube, namespace, name, body);
    } catch (err) {
      if (isConflict(err)) return undefined;
      throw classifyKubeError(err, `rotate CA Secret ${namespace}/${name}`);
    }
    return { material: await this.materialFrom(written), previous: old.signer.cert };
  }

  /** Makes the published bundle ConfigMap hold `material`'s bundle; returns whether it wrote. */
  async publishBundle(material: CaMaterial): Promise<boolean> {
    const { namespace, bundleConfigMapName: name } = this.where;
    const current = await readObject(this.kube, "ConfigMap", namespace, name);
    if (current?.data?.[caKeys.bundle] === material.bundlePem) {
      this.publishedVersion = material.resourceVersion;
      return false;
    }
    await apply<k8s.V1ConfigMap>(this.kube, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, namespace, labels: { ...MANAGED_BY_LABEL } },
      data: { [caKeys.bundle]: material.bundlePem },
    });
    this.publishedVersion = material.resourceVersion;
    this.log.info("published the CA bundle", {
      configMap: `${namespace}/${name}`,
      certificates: material.bundle.length,
    });
    return true;
  }
}

/** The CA store as every function's init opens it: the location from its config, the gauges in its registry. */
export function openCaStore(ctx: {
  config: Parameters<typeof caLocationFrom>[0];
  kube: () => Kube;
  clock: Clock;
  log: Logger;
  metrics: Registry;
}): CaStore {
  return new CaStore(ctx.kube(), caLocationFrom(ctx.config), ctx.clock, ctx.log, caExpiryGauge(ctx.metrics));
}
