// Self-signed CA and serving certificate for the webhook server, made with WebCrypto (ECDSA P-256, SHA-256)
// and a small DER writer: no openssl binary in the controller's image, no subprocess, and the private keys
// never touch a disk. Only the few X.509 v3 structures a webhook serving certificate needs are written
// (RFC 5280: basicConstraints, keyUsage, extKeyUsage, subjectAltName, key identifiers); reading and checking
// certificates is left to node:crypto's X509Certificate.

/** PEM-encoded certificate material, as stored in the Secret (`ca.crt`, `tls.crt`, `tls.key`). */
export interface ServingMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface ServingCertOptions {
  /** DNS names of the serving certificate, e.g. `spiderpool-controller.kube-system.svc`. */
  dnsNames: readonly string[];
  /** IP addresses of the serving certificate, e.g. `127.0.0.1`. */
  ipAddresses: readonly string[];
  /** Validity of both certificates; default 10 years. */
  validDays?: number;
  /** Start of validity; default now minus one hour (clock skew between nodes). */
  notBefore?: Date;
}

const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;
const OID = {
  commonName: "2.5.4.3",
  ecdsaWithSHA256: "1.2.840.10045.4.3.2",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
};

/** Generates a CA and a serving certificate it signed, for `opts.dnsNames` and `opts.ipAddresses`. */
export async function generateServingMaterial(opts: ServingCertOptions): Promise<ServingMaterial> {
  const days = opts.validDays ?? 3650;
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600_000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);
  const ca = await crypto.subtle.generateKey(ECDSA, true, ["sign", "verify"]);
  const leaf = await crypto.subtle.generateKey(ECDSA, true, ["sign", "verify"]);
  const caSpki = new Uint8Array(await crypto.subtle.exportKey("spki", ca.publicKey));
  const leafSpki = new Uint8Array(await crypto.subtle.exportKey("spki", leaf.publicKey));
  const caKeyId = await keyIdentifier(caSpki);
  const leafKeyId = await keyIdentifier(leafSpki);
  const caName = name("spiderpool-controller-ca");

  const caCert = await sign(ca.privateKey, {
    serial: randomSerial(),
    issuer: caName,
    subject: caName,
    notBefore,
    notAfter,
    spki: caSpki,
    extensions: [
      extension(OID.basicConstraints, true, seq(bool(true))),
      // digitalSignature, keyCertSign, cRLSign
      extension(OID.keyUsage, true, bitString(new Uint8Array([0x86]), 1)),
      extension(OID.subjectKeyIdentifier, false, octets(caKeyId)),
    ],
  });
  const leafCert = await sign(ca.privateKey, {
    serial: randomSerial(),
    issuer: caName,
    subject: name(opts.dnsNames[0] ?? opts.ipAddresses[0] ?? "spiderpool-controller"),
    notBefore,
    notAfter,
    spki: leafSpki,
    extensions: [
      extension(OID.basicConstraints, true, seq()),
      // digitalSignature
      extension(OID.keyUsage, true, bitString(new Uint8Array([0x80]), 7)),
      extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
      extension(
        OID.subjectAltName,
        false,
        seq(
          ...opts.dnsNames.map((d) => tlv(0x82, ascii(d))),
          ...opts.ipAddresses.map((ip) => tlv(0x87, ipBytes(ip))),
        ),
      ),
      extension(OID.subjectKeyIdentifier, false, octets(leafKeyId)),
      extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, caKeyId))),
    ],
  });
  const leafKey = new Uint8Array(await crypto.subtle.exportKey("pkcs8", leaf.privateKey));
  return {
    caPem: pem("CERTIFICATE", caCert),
    certPem: pem("CERTIFICATE", leafCert),
    keyPem: pem("PRIVATE KEY", leafKey),
  };
}

interface TBS {
  serial: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  extensions: Uint8Array[];
}

async function sign(key: CryptoKey, t: TBS): Promise<Uint8Array> {
  const algorithm = seq(oid(OID.ecdsaWithSHA256));
  const tbs = seq(
    tlv(0xa0, integer(new Uint8Array([2]))), // version v3
    integer(t.serial),
    algorithm,
    t.issuer,
    seq(time(t.notBefore), time(t.notAfter)),
    t.subject,
    t.spki,
    tlv(0xa3, seq(...t.extensions)),
  );
  const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, tbs.slice()));
  // WebCrypto gives r‖s; X.509 wants the DER SEQUENCE { INTEGER r, INTEGER s }.
  const sig = seq(integer(raw.subarray(0, 32)), integer(raw.subarray(32)));
  return seq(tbs, algorithm, bitString(sig, 0));
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey bits. */
async function keyIdentifier(spki: Uint8Array): Promise<Uint8Array> {
  // SubjectPublicKeyInfo = SEQ { AlgorithmIdentifier, BIT STRING }; the key bits are the BIT STRING's content
  // after its unused-bits byte. For P-256 that is the 65-byte uncompressed point at the end.
  const point = spki.subarray(spki.length - 65);
  return new Uint8Array(await crypto.subtle.digest("SHA-1", point.slice()));
}

function randomSerial(): Uint8Array {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0] & 0x7f) | 0x01; // positive and without a leading zero byte
  return b;
}

function name(cn: string): Uint8Array {
  return seq(set(seq(oid(OID.commonName), tlv(0x0c, new TextEncoder().encode(cn)))));
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function time(d: Date): Uint8Array {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${
    p(d.getUTCSeconds())
  }Z`;
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return y < 2050 ? tlv(0x17, ascii(`${p(y % 100)}${rest}`)) : tlv(0x18, ascii(`${p(y, 4)}${rest}`));
}

function ipBytes(ip: string): Uint8Array {
  if (ip.includes(":")) {
    const [head, tail] = ip.split("::");
    const h = head ? head.split(":") : [];
    const t = tail !== undefined ? (tail ? tail.split(":") : []) : [];
    const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
    const out = new Uint8Array(16);
    groups.forEach((g, i) => {
      const v = parseInt(g, 16);
      out[2 * i] = v >> 8;
      out[2 * i + 1] = v & 0xff;
    });
    return out;
  }
  return new Uint8Array(ip.split(".").map(Number));
}

// --- DER ---------------------------------------------------------------------------------------------------

function tlv(tag: number, content: Uint8Array): Uint8Array<ArrayBuffer> {
  const n = content.length;
  let len: number[];
  if (n < 0x80) len = [n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = [0x80 | bytes.length, ...bytes];
  }
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  out.set(content, 1 + len.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function seq(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return tlv(0x30, concat(parts));
}

function set(...parts: Uint8Array[]): Uint8Array {
  return tlv(0x31, concat(parts));
}

function bool(v: boolean): Uint8Array {
  return tlv(0x01, new Uint8Array([v ? 0xff : 0]));
}

function octets(v: Uint8Array): Uint8Array {
  return tlv(0x04, v);
}

function bitString(v: Uint8Array, unusedBits: number): Uint8Array {
  return tlv(0x03, concat([new Uint8Array([unusedBits]), v]));
}

/** A non-negative INTEGER from big-endian bytes, minimally encoded. */
function integer(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return tlv(0x02, v[0] & 0x80 ? concat([new Uint8Array([0]), v]) : v);
}

function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  const out = [40 * arcs[0] + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const b = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f));
    out.push(...b);
  }
  return tlv(0x06, new Uint8Array(out));
}

function ascii(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function pem(label: string, der: Uint8Array): string {
  let bin = "";
  for (const b of der) bin += String.fromCharCode(b);
  const b64 = btoa(bin).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
