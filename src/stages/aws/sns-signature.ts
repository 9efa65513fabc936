/**
 * SNS message signatures (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html).
 *
 * A message is trusted only when: its SigningCertURL is HTTPS on an allowed host and names a
 * `.pem`; the certificate fetched from there is within its validity period; and the RSA
 * signature (SignatureVersion 1: SHA1, 2: SHA256) over the string to sign checks out with the
 * certificate's public key. The string to sign lists, in this order and only when present,
 * `Name\nValue\n` for: Message, MessageId, Subject, Timestamp, TopicArn, Type (notifications);
 * Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type (subscription and
 * unsubscribe confirmations).
 */
import { type KeyObject, verify, X509Certificate } from 'node:crypto';

/**
 * node:https, fetched when a certificate is: an ESM import of it builds its whole namespace,
 * which loads http2 and undici too, and every start imports this file through the registry.
 */
const httpsGet = () => process.getBuiltinModule('node:https').get;

export type SnsMessageType = 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation';

/** The JSON envelope SNS posts to HTTP(S) subscribers. */
export interface SnsEnvelope {
  Type: string;
  MessageId: string;
  TopicArn: string;
  Message: string;
  Timestamp: string;
  Subject?: string;
  Token?: string;
  SubscribeURL?: string;
  UnsubscribeURL?: string;
  SignatureVersion?: string;
  Signature?: string;
  SigningCertURL?: string;
  MessageAttributes?: Record<string, { Type: string; Value: string }>;
}

const NOTIFICATION_FIELDS = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'] as const;
const CONFIRMATION_FIELDS = [
  'Message',
  'MessageId',
  'SubscribeURL',
  'Timestamp',
  'Token',
  'TopicArn',
  'Type',
] as const;

/** Why a message was refused; `code` is what the source counts. */
export class SignatureError extends Error {
  readonly code: 'unsigned' | 'bad-version' | 'cert-url' | 'cert-fetch' | 'cert-invalid' | 'bad-signature';
  constructor(code: SignatureError['code'], message: string) {
    super(message);
    this.name = 'SignatureError';
    this.code = code;
  }
}

/** The exact bytes SNS signed, or undefined for a type SNS does not sign this way. */
export function stringToSign(m: SnsEnvelope): string | undefined {
  const fields =
    m.Type === 'Notification'
      ? NOTIFICATION_FIELDS
      : m.Type === 'SubscriptionConfirmation' || m.Type === 'UnsubscribeConfirmation'
        ? CONFIRMATION_FIELDS
        : undefined;
  if (!fields) return undefined;
  let out = '';
  for (const f of fields) {
    const v = m[f];
    // Subject is the one optional field of a notification; for the others absence is a forgery.
    if (v === undefined || v === null) {
      if (f === 'Subject') continue;
      return undefined;
    }
    if (typeof v !== 'string') return undefined;
    out += `${f}\n${v}\n`;
  }
  return out;
}

/**
 * A host pattern such as `sns.*.amazonaws.com` or `127.0.0.1:8443`: `*` stands for one or
 * more characters of a single DNS label; a port must match exactly (default 443).
 */
export function compileHostPattern(pattern: string): (url: URL) => boolean {
  const [hostPart, portPart] = splitHostPort(pattern.trim().toLowerCase());
  const re = new RegExp(
    `^${hostPart
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\-]/g, '\\$&'))
      .join('[a-z0-9-]+')}$`,
  );
  const port = portPart ?? '443';
  return (url) => re.test(url.hostname.toLowerCase()) && (url.port || '443') === port;
}

function splitHostPort(s: string): [string, string | undefined] {
  const i = s.lastIndexOf(':');
  if (i > 0 && /^\d+$/.test(s.slice(i + 1))) return [s.slice(0, i), s.slice(i + 1)];
  return [s, undefined];
}

/** The certificate host SNS uses in a region: `sns.<region>.amazonaws.com` (`.com.cn` in China). */
export function defaultCertHost(region: string): string {
  return region.startsWith('cn-') ? `sns.${region}.amazonaws.com.cn` : `sns.${region}.amazonaws.com`;
}

/** Checks a SigningCertURL before anything is fetched from it. */
export function checkCertUrl(raw: string, hostAllowed: (url: URL) => boolean): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SignatureError('cert-url', 'SigningCertURL is not a URL');
  }
  if (url.protocol !== 'https:') throw new SignatureError('cert-url', 'SigningCertURL is not HTTPS');
  if (url.username || url.password)
    throw new SignatureError('cert-url', 'SigningCertURL carries credentials');
  if (!hostAllowed(url))
    throw new SignatureError('cert-url', `SigningCertURL host ${url.host} is not allowed`);
  if (!url.pathname.endsWith('.pem'))
    throw new SignatureError('cert-url', 'SigningCertURL does not name a .pem');
  return url;
}

export type CertFetcher = (url: URL) => Promise<string>;

/**
 * Fetches a PEM over HTTPS with the process's trusted CAs (plus `ca` when given: tests pass
 * the CA of a local server here; specs cannot). No redirects, bounded size and time.
 */
export function httpsCertFetcher(
  opts: { ca?: string | Buffer; timeoutMs?: number; maxBytes?: number } = {},
): CertFetcher {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const maxBytes = opts.maxBytes ?? 64 * 1024;
  return (url) =>
    new Promise((resolve, reject) => {
      const req = httpsGet()(url, { ca: opts.ca, timeout: timeoutMs }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`certificate fetch answered ${res.statusCode}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            req.destroy(new Error(`certificate larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`certificate fetch timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
    });
}

export interface VerifierOptions {
  /** Host pattern SigningCertURL must match (see compileHostPattern). */
  certHost: string;
  /** How certificates are fetched; defaults to HTTPS with the system's CAs. */
  fetchCert?: CertFetcher;
  /** Certificates kept (by URL); SNS uses few at a time. */
  cacheSize?: number;
  now?: () => number;
}

/** Verifies envelopes; certificates are fetched once per URL and cached (failures are not cached). */
export class SnsSignatureVerifier {
  private readonly hostAllowed: (url: URL) => boolean;
  private readonly fetchCert: CertFetcher;
  private readonly cacheSize: number;
  private readonly now: () => number;
  private readonly cache = new Map<
    string,
    Promise<{ key: KeyObject; notAfter: number; notBefore: number }>
  >();
  /** Certificate downloads so far (for metrics and tests). */
  fetches = 0;

  constructor(opts: VerifierOptions) {
    this.hostAllowed = compileHostPattern(opts.certHost);
    this.fetchCert = opts.fetchCert ?? httpsCertFetcher();
    this.cacheSize = opts.cacheSize ?? 32;
    this.now = opts.now ?? Date.now;
  }

  /** Resolves when the signature is valid; rejects with a SignatureError otherwise. */
  async verify(m: SnsEnvelope): Promise<void> {
    if (!m.Signature || !m.SigningCertURL || !m.SignatureVersion) {
      throw new SignatureError('unsigned', 'message has no Signature, SignatureVersion or SigningCertURL');
    }
    const algorithm = m.SignatureVersion === '1' ? 'sha1' : m.SignatureVersion === '2' ? 'sha256' : undefined;
    if (!algorithm) throw new SignatureError('bad-version', `unknown SignatureVersion ${m.SignatureVersion}`);
    const text = stringToSign(m);
    if (text === undefined)
      throw new SignatureError('unsigned', `fields missing for a signed ${m.Type} message`);
    const url = checkCertUrl(m.SigningCertURL, this.hostAllowed);
    const cert = await this.certificate(url);
    const now = this.now();
    if (now < cert.notBefore || now > cert.notAfter) {
      throw new SignatureError('cert-invalid', 'signing certificate is outside its validity period');
    }
    const signature = Buffer.from(m.Signature, 'base64');
    if (!verify(algorithm, Buffer.from(text, 'utf8'), cert.key, signature)) {
      throw new SignatureError('bad-signature', 'signature does not match the message');
    }
  }

  private certificate(url: URL) {
    const href = url.href;
    let entry = this.cache.get(href);
    if (entry) {
      // Refresh recency: Map iteration order is insertion order, so re-insert.
      this.cache.delete(href);
      this.cache.set(href, entry);
      return entry;
    }
    this.fetches++;
    entry = this.fetchCert(url).then(
      (pem) => {
        try {
          const x509 = new X509Certificate(pem);
          return {
            key: x509.publicKey,
            notBefore: Date.parse(x509.validFrom),
            notAfter: Date.parse(x509.validTo),
          };
        } catch (e) {
          throw new SignatureError(
            'cert-invalid',
            `signing certificate is not a valid PEM: ${(e as Error).message}`,
          );
        }
      },
      (e: unknown) => {
        throw new SignatureError(
          'cert-fetch',
          `cannot fetch the signing certificate: ${(e as Error).message}`,
        );
      },
    );
    entry.catch(() => {
      if (this.cache.get(href) === entry) this.cache.delete(href);
    });
    this.cache.set(href, entry);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return entry;
  }
}
