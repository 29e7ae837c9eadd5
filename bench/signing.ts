// Signing one serving certificate with its key at hand (the key pool's case): the project's own DER encoding
// (shared/pki/der.ts) beside @peculiar/x509's generator, which encoded every leaf before, in interleaved rounds.
// CPU from process.cpuUsage; RSA key generation is not in it. `npm run bench:signing`; BENCH_SIGNS per round (200).
import {
  createAuthority,
  generateKeyPair,
  importPrivateKeyPem,
  signServingCertificate,
} from "../shared/pki/index.ts";
import { referenceLeaf } from "../dev/reference-leaf.ts";
import { machine, median, printTable } from "./support.ts";

const SIGNS = Number(process.env.BENCH_SIGNS ?? 200);
const ROUNDS = 5;
const now = new Date();
const ca = await createAuthority({ now });
const signer = { cert: ca.cert, key: await importPrivateKeyPem(ca.keyPem) };
const keys = await Promise.all(Array.from({ length: 20 }, () => generateKeyPair("rsa-2048")));
const names = (i: number) => [`svc-${i}.bench.svc`, `svc-${i}.bench.svc.cluster.local`];
const usages = 0x01 | 0x04; // digitalSignature | keyEncipherment, as serving certificates carry

const cases: Array<[string, (i: number) => Promise<unknown>]> = [
  [
    "signServingCertificate (shared/pki/der.ts)",
    (i) => signServingCertificate({ signer, hostnames: names(i), now, keys: keys[i % keys.length] }),
  ],
  [
    "X509CertificateGenerator.create (@peculiar/x509)",
    (i) =>
      referenceLeaf(
        {
          serialNumber: "0a1b2c3d",
          commonName: names(i)[0]!,
          dnsNames: names(i),
          notBefore: now,
          notAfter: new Date(now.getTime() + 730 * 86_400_000),
          publicKey: keys[i % keys.length]!.publicKey,
          keyUsages: usages,
        },
        signer,
      ),
  ],
];
const cpu = cases.map(() => [] as number[]);
const wall = cases.map(() => [] as number[]);
for (let round = 0; round < ROUNDS; round++)
  for (const [c, [, sign]] of cases.entries()) {
    for (let i = 0; i < 10; i++) await sign(i); // warm
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < SIGNS; i++) await sign(i);
    const used = process.cpuUsage(c0);
    cpu[c]!.push((used.user + used.system) / 1000 / SIGNS);
    wall[c]!.push((performance.now() - t0) / SIGNS);
  }
printTable(
  `Signing a serving certificate, key at hand: median of ${ROUNDS} rounds of ${SIGNS} (${machine()})`,
  ["encoder", "CPU ms a certificate", "wall ms a certificate"],
  cases.map(([name], c) => [name, median(cpu[c]!), median(wall[c]!)]),
);
