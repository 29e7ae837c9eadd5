// Just enough DER (X.690) to write one leaf certificate: @peculiar/x509 builds every certificate as an object
// graph and encodes it through reflection, ~6 CPU ms a leaf, where these few writers take a fraction of one.
export type Der = Uint8Array<ArrayBuffer>;

/** Universal tags, as the whole identifier octet (constructed types with their 0x20 bit). */
export const TAG = {
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

const utf8 = new TextEncoder();

function lengthOctets(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

/** One tag-length-value; `tag` is the whole identifier octet. */
function tlv(tag: number, ...content: Der[]): Der {
  const size = content.reduce((n, c) => n + c.length, 0);
  const head = [tag, ...lengthOctets(size)];
  const out = new Uint8Array(head.length + size);
  out.set(head);
  let at = head.length;
  for (const c of content) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export const sequence = (...content: Der[]) => tlv(TAG.sequence, ...content);
export const set = (...content: Der[]) => tlv(TAG.set, ...content);
export const octetString = (content: Der) => tlv(TAG.octetString, content);
const utf8String = (text: string) => tlv(TAG.utf8String, utf8.encode(text));
/** An IA5String's bytes (a dNSName's): ASCII only, which UTF-8 would silently turn into something else. */
export function ia5(text: string): Der {
  if ([...text].some((c) => c.charCodeAt(0) > 0x7f)) throw new Error(`${JSON.stringify(text)} is not ASCII`);
  return utf8.encode(text);
}

/** PrintableString where the text allows it, else UTF8String: what Go's crypto/x509 and @peculiar/x509 write. */
export const directoryString = (text: string) =>
  /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(text) ? tlv(TAG.printableString, utf8.encode(text)) : utf8String(text);
export const derNull = () => tlv(TAG.null);
/** Context-specific and constructed: `[n] EXPLICIT`. */
export const explicit = (n: number, content: Der) => tlv(0xa0 | n, content);
/** Context-specific and primitive: `[n] IMPLICIT` of a primitive type (a GeneralName's dNSName is [2]). */
export const implicit = (n: number, content: Der) => tlv(0x80 | n, content);
/** A bit string of whole bytes (no unused bits), as signatures and keys are. */
export const bitString = (content: Der) => tlv(TAG.bitString, Uint8Array.of(0), content);

/** A non-negative INTEGER from its big-endian magnitude, in the minimal two's-complement form DER requires. */
export function unsignedInteger(magnitude: Der): Der {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  return trimmed[0]! & 0x80
    ? tlv(TAG.integer, Uint8Array.of(0), trimmed)
    : tlv(TAG.integer, trimmed.length ? trimmed : Uint8Array.of(0));
}

export const smallInteger = (n: number) => unsignedInteger(Uint8Array.of(n));

export function oid(dotted: string): Der {
  const arcs = dotted.split(".").map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0))
    throw new Error(`${dotted} is not an object identifier`);
  const out: number[] = [];
  for (const arc of [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)]) {
    const base128: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift(0x80 | (v & 0x7f));
    out.push(...base128);
  }
  return tlv(TAG.oid, Uint8Array.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, in UTC. */
export function time(at: Date): Der {
  const iso = at.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "") + "Z";
  const year = at.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new Error(`${iso} cannot be a certificate's time`);
  return year < 2050
    ? tlv(TAG.utcTime, utf8.encode(digits.slice(2)))
    : tlv(TAG.generalizedTime, utf8.encode(digits));
}

/** What a parsed bit string holds after its unused-bits octet (a SubjectPublicKeyInfo's key, say). */
export function bitStringContent(der: Der): Der {
  if (der[0] !== TAG.bitString) throw new Error("not a BIT STRING");
  const { header, length } = readLength(der, 1);
  return der.subarray(header + 1, header + length);
}

/** The elements of a SEQUENCE, each with its own tag and length. */
export function sequenceElements(der: Der): Der[] {
  if (der[0] !== TAG.sequence) throw new Error("not a SEQUENCE");
  const { header, length } = readLength(der, 1);
  const end = header + length;
  const elements: Der[] = [];
  for (let at = header; at < end;) {
    const { header: h, length: l } = readLength(der, at + 1);
    elements.push(der.subarray(at, h + l));
    at = h + l;
  }
  return elements;
}

/** The length whose first octet is at `at`: where the content starts, and how long it is. */
function readLength(der: Der, at: number): { header: number; length: number } {
  const first = der[at]!;
  if (first < 0x80) return { header: at + 1, length: first };
  const count = first & 0x7f;
  let length = 0;
  for (let i = 1; i <= count; i++) length = length * 256 + der[at + i]!;
  return { header: at + 1 + count, length };
}
