// The webhook server's certificate: `provided` reads cert, key and CA files; `auto` keeps a CA and serving
// certificate in the Secret `spiderpool-controller-server-certs`, reusing what is there while it is valid
// for the names this replica needs, so every replica serves the same certificate and one caBundle fits all.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { ConflictError, type KubeHttp, NotFoundError } from "../../kube/client.ts";
import { generateServingMaterial, type ServingMaterial } from "./x509.ts";

export type { ServingMaterial } from "./x509.ts";

/** Name of the Secret holding the generated certificate (method `auto`). */
export const CERT_SECRET_NAME = "spiderpool-controller-server-certs";

/** A certificate is renewed when it expires within this time. */
const RENEW_BEFORE_MS = 30 * 86_400_000;

/** The certificate material cannot be used; the message says which file or Secret and why. */
export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CertificateError";
  }
}

/** What the serving certificate must cover. */
export interface CertNeeds {
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

/**
 * Why `m` cannot serve `needs` at `now`, or undefined when it can: it must parse, chain to its CA, match its
 * key, cover every name and address, and stay valid for `renewBeforeMs` more (generated certificates are
 * renewed a month ahead; a provided one only has to be valid now).
 */
export function unusableReason(
  m: ServingMaterial,
  needs: CertNeeds,
  now = new Date(),
  renewBeforeMs = RENEW_BEFORE_MS,
): string | undefined {
  let cert: X509Certificate, ca: X509Certificate;
  try {
    cert = new X509Certificate(m.certPem);
    ca = new X509Certificate(m.caPem);
  } catch (err) {
    return `the certificate does not parse: ${(err as Error).message}`;
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(m.keyPem))) {
      return "the key does not belong to the certificate";
    }
  } catch (err) {
    return `the key does not parse: ${(err as Error).message}`;
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return "the certificate is not signed by the CA";
  const notAfter = new Date(cert.validTo).getTime();
  if (new Date(cert.validFrom).getTime() > now.getTime()) {
    return `the certificate is valid only from ${cert.validFrom}`;
  }
  if (notAfter - now.getTime() < renewBeforeMs) {
    return `the certificate ${notAfter <= now.getTime() ? "expired" : "expires"} ${cert.validTo}`;
  }
  const sans = (cert.subjectAltName ?? "").split(",").map((s) => s.trim());
  for (const d of needs.dnsNames) if (!sans.includes(`DNS:${d}`)) return `the certificate does not name ${d}`;
  for (const ip of needs.ipAddresses) {
    if (!sans.some((s) => s.startsWith("IP Address:") && sameIP(s.slice("IP Address:".length), ip))) {
      return `the certificate does not name ${ip}`;
    }
  }
  return undefined;
}

function sameIP(a: string, b: string): boolean {
  if (!a.includes(":") || !b.includes(":")) return a === b;
  const expand = (ip: string) => {
    const [h, t] = ip.split("::");
    const hs = h ? h.split(":") : [];
    const ts = t !== undefined ? (t ? t.split(":") : []) : [];
    const all = t === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill("0"), ...ts];
    return all.map((g) => parseInt(g, 16)).join(":");
  };
  return expand(a) === expand(b);
}

/** Reads provided certificate files (`tls.method: provided`). */
export async function readProvided(
  files: { certFile: string; keyFile: string; caFile: string },
  needs: CertNeeds,
): Promise<ServingMaterial> {
  const read = async (what: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new CertificateError(`cannot read the ${what} ${path}: ${(err as Error).message}`);
    }
  };
  const m: ServingMaterial = {
    certPem: await read("serving certificate", files.certFile),
    keyPem: await read("serving key", files.keyFile),
    caPem: await read("CA certificate", files.caFile),
  };
  const why = unusableReason(m, needs, new Date(), 0);
  if (why) {
    throw new CertificateError(
      `provided certificate ${files.certFile} (CA ${files.caFile}) cannot serve the webhooks: ${why}`,
    );
  }
  return m;
}

interface Secret {
  apiVersion: "v1";
  kind: "Secret";
  type?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

const b64 = (s: string) => btoa(s);
const unb64 = (s: string | undefined) => s === undefined ? "" : atob(s);

function fromSecret(s: Secret): ServingMaterial {
  return {
    caPem: unb64(s.data?.["ca.crt"]),
    certPem: unb64(s.data?.["tls.crt"]),
    keyPem: unb64(s.data?.["tls.key"]),
  };
}

/**
 * `tls.method: auto`: the material in Secret `spiderpool-controller-server-certs` of `namespace` when it is
 * usable, else new material written there (created, or replaced with optimistic concurrency). When another
 * replica writes first, its material is read back and used, so all replicas end up with the same certificate.
 */
export async function ensureAutoCertificate(
  http: KubeHttp,
  namespace: string,
  needs: CertNeeds,
  log: (m: string) => void,
): Promise<ServingMaterial> {
  const path = `/api/v1/namespaces/${namespace}/secrets`;
  for (let attempt = 1; attempt <= 5; attempt++) {
    let secret: Secret | undefined;
    try {
      secret = (await http.get<Secret>(`${path}/${CERT_SECRET_NAME}`)).body;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    if (secret) {
      const m = fromSecret(secret);
      const why = unusableReason(m, needs);
      if (!why) return m;
      log(`Secret ${namespace}/${CERT_SECRET_NAME}: ${why}; generating a new certificate`);
    }
    // Names other replicas need stay covered: the Service name is the same for all, and loopback too.
    const m = await generateServingMaterial({ dnsNames: needs.dnsNames, ipAddresses: needs.ipAddresses });
    const body: Secret = {
      apiVersion: "v1",
      kind: "Secret",
      // The type of an existing Secret cannot change.
      type: secret?.type ?? "kubernetes.io/tls",
      metadata: {
        name: CERT_SECRET_NAME,
        namespace,
        resourceVersion: secret?.metadata.resourceVersion,
        labels: { "app.kubernetes.io/component": "spiderpool-controller" },
      },
      data: { "ca.crt": b64(m.caPem), "tls.crt": b64(m.certPem), "tls.key": b64(m.keyPem) },
    };
    try {
      if (secret) await http.put(`${path}/${CERT_SECRET_NAME}`, body);
      else await http.post(path, body);
      log(`wrote a new CA and serving certificate to Secret ${namespace}/${CERT_SECRET_NAME}`);
      return m;
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      // Another replica wrote first: use its certificate if it suits us.
    }
  }
  throw new CertificateError(
    `Secret ${namespace}/${CERT_SECRET_NAME} kept changing while this replica tried to store a certificate`,
  );
}
