// Reading DER (X.690): a tag-length-value walker and the primitives a served certificate is read with, so the
// scan judges a Secret in JavaScript instead of making OpenSSL objects for it (half the CPU, BENCHMARKS.md).
export interface Tlv {
  tag: number;
  /** first byte of the header (the tag) */
  at: number;
  /** first byte of the content */
  start: number;
  /** one past the content's last byte */
  end: number;
}

/** One tag-length-value at `at`, which must carry `tag` when given; throws on anything malformed or truncated. */
export function readTlv(buf: Uint8Array, at: number, tag?: number): Tlv {
  const found = buf[at];
  if (found === undefined || (tag !== undefined && found !== tag)) throw new Error("unexpected tag");
  let len = buf[at + 1];
  if (len === undefined) throw new Error("truncated");
  let start = at + 2;
  if (len & 0x80) {
    const bytes = len & 0x7f;
    if (bytes < 1 || bytes > 4) throw new Error("bad length");
    len = 0;
    for (let i = 0; i < bytes; i++) len = len * 256 + (buf[start + i] ?? 0);
    start += bytes;
  }
  if (start + len > buf.length) throw new Error("truncated");
  return { tag: found, at, start, end: start + len };
}

/** The TLVs that fill `[from, to)` exactly, in order. */
export function readAll(buf: Uint8Array, from: number, to: number): Tlv[] {
  const out: Tlv[] = [];
  for (let at = from; at < to;) {
    const t = readTlv(buf, at);
    if (t.end > to) throw new Error("overruns its container");
    out.push(t);
    at = t.end;
  }
  return out;
}

/** An OBJECT IDENTIFIER's content in dotted form. */
export function oidText(content: Uint8Array): string {
  if (content.length === 0) throw new Error("empty OID");
  const arcs: number[] = [];
  let v = 0;
  for (const b of content) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0;
    }
  }
  if (content[content.length - 1]! & 0x80) throw new Error("truncated OID");
  const first = arcs.shift()!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs].join(".");
}

/** UTCTime (two-digit years 1950–2049, RFC 5280) or GeneralizedTime, in the `Z` form DER requires. */
export function readTime(buf: Uint8Array, t: Tlv): Date {
  const text = String.fromCharCode(...buf.subarray(t.start, t.end));
  const m =
    t.tag === 0x17
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : t.tag === 0x18
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
        : null;
  if (!m) throw new Error("not a DER time");
  const n = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const year = t.tag === 0x17 ? (n[0] < 50 ? 2000 + n[0] : 1900 + n[0]) : n[0];
  return new Date(Date.UTC(year, n[1] - 1, n[2], n[3], n[4], n[5]));
}

/** An INTEGER's content without the leading zero octets DER adds to keep it positive. */
export function unsignedBytes(content: Uint8Array): Uint8Array {
  let i = 0;
  while (i < content.length - 1 && content[i] === 0) i++;
  return content.subarray(i);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
