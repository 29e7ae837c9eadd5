// @peculiar/x509 needs the reflect-metadata polyfill loaded before it; import x509 only from here.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export type X509Certificate = x509.X509Certificate;
