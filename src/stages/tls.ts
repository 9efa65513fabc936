/**
 * TLS options shared by the stages that talk to a server over TCP (Kafka, MySQL): which CA to
 * trust, the client certificate and key, and whether to check the server's name. Each piece
 * comes from a file (`*_file`) or from PEM text, usually an environment variable; the key is a
 * secret, so as text it can only be a `${VAR}` reference.
 *
 * Verification is on unless `insecure_skip_verify` says otherwise: the chain must lead to the
 * CA (the system's CAs when none is given) and the certificate must name the host connected to
 * (or `server_name`).
 */
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { type Static, type TProperties, Type } from '@sinclair/typebox';
import { Secret } from '../spec/types.ts';
import type { CheckReport } from './define.ts';

const tlsFields = {
  ca_file: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'PEM file of the CA certificates that sign the server certificate; default the system CAs',
      examples: ['/etc/ssl/kafka/ca.pem'],
    }),
  ),
  ca: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'The same as PEM text, e.g. from an environment variable (instead of ca_file)',
      examples: ['${KAFKA_CA_PEM}'],
    }),
  ),
  cert_file: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'PEM file of the client certificate (and its chain), for servers that require one',
      examples: ['/etc/ssl/kafka/client.pem'],
    }),
  ),
  cert: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'The client certificate as PEM text (instead of cert_file)',
      examples: ['${KAFKA_CLIENT_CERT}'],
    }),
  ),
  key_file: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'PEM file of the client certificate’s private key (unencrypted)',
      examples: ['/etc/ssl/kafka/client.key'],
    }),
  ),
  key: Type.Optional(
    Secret({
      description:
        'The client private key as PEM text, only from the environment (instead of key_file): ${KAFKA_CLIENT_KEY}',
      examples: ['${KAFKA_CLIENT_KEY}'],
    }),
  ),
  verify_identity: Type.Optional(
    Type.Boolean({
      default: true,
      description:
        'Check that the server certificate names the host connected to (or server_name); false checks only that a trusted CA signed it',
    }),
  ),
  insecure_skip_verify: Type.Optional(
    Type.Boolean({
      default: false,
      description:
        'Accept any server certificate, signed by anyone for any name: encrypted, but open to a man in the middle. For tests only',
    }),
  ),
};

const serverName = {
  server_name: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'Name the server certificate must carry, and the SNI sent; default the host of each broker',
      examples: ['kafka.internal.example.com'],
    }),
  ),
};

/** The TLS block of a stage; `withServerName` for clients that can send a name of their own. */
function tlsObject<P extends TProperties>(extra: P, description: string) {
  return Type.Object({ ...tlsFields, ...extra }, { additionalProperties: false, description });
}

export const KafkaTlsObject = tlsObject(
  serverName,
  'TLS to the brokers: CA, client certificate and key, each from a file or the environment',
);
export const MysqlTlsObject = tlsObject(
  {},
  'TLS to the server: CA, client certificate and key, each from a file or the environment; the server name checked is the URL’s host',
);

export type TlsOptions = Static<typeof KafkaTlsObject>;

/** Static checks of a TLS block at `path`: one source per piece, a key with each certificate. */
export function checkTls(tls: TlsOptions, report: CheckReport, path: readonly string[]): void {
  const both = (file: keyof TlsOptions, text: keyof TlsOptions) => {
    if (tls[file] !== undefined && tls[text] !== undefined)
      report([...path, text], 'schema-value', `give \`${file}\` or \`${text}\`, not both`);
  };
  both('ca_file', 'ca');
  both('cert_file', 'cert');
  both('key_file', 'key');
  const hasCert = tls.cert_file !== undefined || tls.cert !== undefined;
  const hasKey = tls.key_file !== undefined || tls.key !== undefined;
  if (hasCert !== hasKey) {
    report(
      path,
      'schema-value',
      hasCert
        ? 'a client certificate needs its private key: add `key_file` (or `key`)'
        : 'a private key needs its client certificate: add `cert_file` (or `cert`)',
    );
  }
  if (tls.insecure_skip_verify) {
    report(
      [...path, 'insecure_skip_verify'],
      'insecure-setting',
      'the server certificate is not checked: anyone between sluice and the server can read and change the traffic',
      'warning',
    );
  }
}

/**
 * Node's TLS options for a block: files read now (at start), each failure naming the file and
 * never the content. `servername` is left to the caller, which knows whether it may send one.
 */
export async function loadTls(tls: TlsOptions, what: string): Promise<ConnectionOptions> {
  const read = async (file: string | undefined, text: string | undefined, role: string) => {
    if (text !== undefined) return text;
    if (file === undefined) return undefined;
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
      throw new Error(`${what}: cannot read the TLS ${role} file ${file}: ${why ?? String(err)}`);
    }
  };
  const [ca, cert, key] = await Promise.all([
    read(tls.ca_file, tls.ca, 'CA'),
    read(tls.cert_file, tls.cert, 'client certificate'),
    read(tls.key_file, tls.key, 'client key'),
  ]);
  const out: ConnectionOptions = { rejectUnauthorized: tls.insecure_skip_verify !== true };
  if (ca !== undefined) out.ca = ca;
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  // Identity is part of Node's verification; with it off, only the chain is checked.
  if (tls.verify_identity === false || tls.insecure_skip_verify === true)
    out.checkServerIdentity = () => undefined;
  return out;
}

const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
]);

/** Node's code for the messages of its certificate checks. */
function codeOfMessage(message: string): string {
  if (
    /self[- ]signed certificate|unable to (verify the first certificate|get (local )?issuer certificate)/i.test(
      message,
    )
  )
    return 'UNABLE_TO_VERIFY_LEAF_SIGNATURE';
  if (/does not match certificate's altnames/i.test(message)) return 'ERR_TLS_CERT_ALTNAME_INVALID';
  if (/certificate has expired|certificate is not yet valid/i.test(message)) return 'CERT_HAS_EXPIRED';
  return '';
}

/** Every error inside `err`: itself, the members of an AggregateError, causes; depth-bounded. */
function* nested(err: unknown, depth = 0): Generator<Error> {
  if (depth > 5 || !(err instanceof Error)) return;
  yield err;
  if (err instanceof AggregateError) for (const inner of err.errors) yield* nested(inner, depth + 1);
  yield* nested(err.cause, depth + 1);
}

/**
 * The reason of a TLS failure in words an operator acts on, from Node's error codes; undefined
 * when the error is not about certificates or the handshake.
 */
export function tlsFailure(err: unknown): string | undefined {
  for (const e of nested(err)) {
    // Some drivers (mysql2) pass Node's message on under a code of their own.
    const own = (e as NodeJS.ErrnoException).code ?? '';
    const code = codeOfMessage(e.message) || own;
    if (UNTRUSTED.has(code)) {
      return `the server certificate is not signed by a trusted CA (${e.message}): give the CA that signs it in tls.ca_file`;
    }
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return `the server certificate does not name this host (${e.message}): connect by a name the certificate carries`;
    }
    if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
      return `the server certificate is not valid now (${e.message})`;
    }
    if (code.startsWith('ERR_SSL')) return `the TLS handshake failed (${e.message})`;
  }
  return undefined;
}
