/**
 * The security block of the Kafka source and sink, one schema for both so they cannot drift:
 * `tls` (CA, client certificate and key, server name) and `sasl` (PLAIN, SCRAM-SHA-256/512, or
 * AWS MSK IAM). Passwords and keys come only from the environment or files.
 *
 * AWS_MSK_IAM is SASL/OAUTHBEARER with a token that is a SigV4-presigned
 * `kafka-cluster:Connect` request, signed with credentials from the AWS SDK's default chain
 * (environment, profile, container or instance role). AWS's own signer builds it
 * (`aws-msk-iam-sasl-signer-js`, loaded only when a stage uses the mechanism); the client asks
 * for a new token at every (re)authentication, so tokens never outlive their 15 minutes.
 *
 * Like the rest of this folder apart from runtime.ts, nothing here loads the Kafka client.
 */
import type { ConnectionOptions } from 'node:tls';
import type { SASLOptions } from '@platformatic/kafka';
import { type Static, Type } from '@sinclair/typebox';
import { Secret } from '../../spec/types.ts';
import type { CheckReport } from '../define.ts';
import { checkTls, KafkaTlsObject, loadTls, type TlsOptions, tlsFailure } from '../tls.ts';

const SaslObject = Type.Object(
  {
    mechanism: Type.Union(
      [
        Type.Literal('PLAIN'),
        Type.Literal('SCRAM-SHA-256'),
        Type.Literal('SCRAM-SHA-512'),
        Type.Literal('AWS_MSK_IAM'),
      ],
      {
        description:
          'PLAIN and SCRAM-SHA-256/512 take username and password; AWS_MSK_IAM signs a token with the AWS SDK’s default credentials (MSK’s IAM listener, port 9098; TLS is on)',
      },
    ),
    username: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'SASL user name (PLAIN, SCRAM)',
        examples: ['${KAFKA_USERNAME}'],
      }),
    ),
    password: Type.Optional(
      Secret({
        description: 'SASL password (PLAIN, SCRAM), only from the environment: ${KAFKA_PASSWORD}',
        examples: ['${KAFKA_PASSWORD}'],
      }),
    ),
    region: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'AWS_MSK_IAM: region the token is signed for; default the region in the brokers’ names (…kafka.<region>.amazonaws.com), else AWS_REGION',
        examples: ['us-east-1'],
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'SASL authentication to the brokers',
    examples: [{ mechanism: 'SCRAM-SHA-512', username: '${KAFKA_USERNAME}', password: '${KAFKA_PASSWORD}' }],
  },
);

/** Options spread into the Kafka source's and sink's schemas. */
export const KafkaSecurityOptions = {
  tls: Type.Optional(
    Type.Union([Type.Boolean(), KafkaTlsObject], {
      description:
        'TLS to the brokers: true to trust the system CAs, or a block: ca_file or ca (PEM text), cert_file or cert and key_file or key (key only as ${VAR}) for a client certificate, server_name, verify_identity (default true), insecure_skip_verify (default false). Off unless given (on for AWS_MSK_IAM)',
      examples: [true, { ca_file: '/etc/ssl/kafka/ca.pem' }],
    }),
  ),
  sasl: Type.Optional(SaslObject),
};

export type SaslSettings = Static<typeof SaslObject>;

export interface KafkaSecuritySettings {
  tls?: boolean | TlsOptions;
  sasl?: SaslSettings;
}

/** The part of the client options that secures its connections. */
export interface KafkaConnectionSecurity {
  tls?: ConnectionOptions;
  tlsServerName?: string;
  sasl?: SASLOptions;
}

const usesTls = (o: KafkaSecuritySettings): boolean =>
  o.tls === undefined ? o.sasl?.mechanism === 'AWS_MSK_IAM' : o.tls !== false;

/** Static checks of the security block, reported at validation. */
export function checkKafkaSecurity(o: KafkaSecuritySettings, report: CheckReport): void {
  if (typeof o.tls === 'object') checkTls(o.tls, report, ['tls']);
  const sasl = o.sasl;
  if (!sasl) return;
  if (sasl.mechanism === 'AWS_MSK_IAM') {
    for (const k of ['username', 'password'] as const) {
      if (sasl[k] !== undefined)
        report(
          ['sasl', k],
          'schema-value',
          `AWS_MSK_IAM takes no ${k}: credentials come from the AWS SDK chain`,
        );
    }
    if (o.tls === false)
      report(
        ['tls'],
        'schema-value',
        'AWS_MSK_IAM needs TLS: MSK’s IAM listener (port 9098) accepts only TLS',
      );
    return;
  }
  for (const k of ['username', 'password'] as const) {
    if (sasl[k] === undefined) report(['sasl'], 'schema-value', `${sasl.mechanism} needs sasl.${k}`);
  }
  if (sasl.region !== undefined) report(['sasl', 'region'], 'schema-value', 'region is for AWS_MSK_IAM only');
  if (sasl.mechanism === 'PLAIN' && !usesTls(o)) {
    report(
      ['sasl', 'mechanism'],
      'insecure-setting',
      'PLAIN without tls sends the password in the clear: add tls',
      'warning',
    );
  }
}

/** Client options for the security block: files read and tokens wired now, at start. */
export async function kafkaConnectionSecurity(
  o: KafkaSecuritySettings,
  brokers: readonly string[],
): Promise<KafkaConnectionSecurity> {
  const out: KafkaConnectionSecurity = {};
  if (usesTls(o)) {
    const block = typeof o.tls === 'object' ? o.tls : {};
    out.tls = await loadTls(block, 'kafka');
    if (block.server_name) out.tlsServerName = block.server_name;
  }
  const sasl = o.sasl;
  if (sasl?.mechanism === 'AWS_MSK_IAM') {
    const region =
      sasl.region ?? regionOfBrokers(brokers) ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
    if (!region) {
      throw new Error(
        'kafka: AWS_MSK_IAM needs a region: set sasl.region or AWS_REGION (brokers not named …kafka.<region>.amazonaws.com)',
      );
    }
    out.sasl = { mechanism: 'OAUTHBEARER', token: () => mskIamToken(region) };
  } else if (sasl) {
    out.sasl = { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password };
  }
  return out;
}

/** The region in MSK broker names: b-1.cluster.abc123.c2.kafka.us-east-1.amazonaws.com. */
export function regionOfBrokers(brokers: readonly string[]): string | undefined {
  for (const b of brokers) {
    const m = /\.kafka(?:-serverless)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?::\d+)?$/i.exec(b.trim());
    if (m) return m[1].toLowerCase();
  }
  return undefined;
}

/**
 * A fresh MSK IAM token: the presigned `kafka-cluster:Connect` URL, base64url, signed for
 * `region` with the AWS SDK's default credential chain.
 */
export async function mskIamToken(region: string): Promise<string> {
  const { generateAuthToken } = await import('aws-msk-iam-sasl-signer-js');
  try {
    const { token } = await generateAuthToken({ region });
    return token;
  } catch (err) {
    throw new Error(`AWS_MSK_IAM: cannot sign a token for ${region}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * What to add to "no answer from the brokers": a broker that requires a client certificate
 * closes every TLS connection that has none, which the client retries until the deadline.
 */
export function noAnswerHint(o: KafkaSecuritySettings): string {
  if (!usesTls(o)) return '';
  const block = typeof o.tls === 'object' ? o.tls : {};
  const hasCert = block.cert_file !== undefined || block.cert !== undefined;
  return hasCert
    ? ''
    : ' (a broker that requires a client certificate closes connections without one: set tls.cert_file and tls.key_file)';
}

/**
 * Why a connection failed, when the reason is the security setup: a certificate not trusted
 * or not naming the broker, a refused login. Names the brokers and the user, never a secret.
 */
export function kafkaSecurityFailure(
  err: unknown,
  brokers: string,
  o: KafkaSecuritySettings,
): string | undefined {
  const tls = usesTls(o) ? tlsFailure(err) : undefined;
  if (tls) return `kafka: TLS to ${brokers} failed: ${tls}`;
  if (!o.sasl) return undefined;
  for (const e of nested(err)) {
    const name = e.constructor?.name ?? '';
    if (name === 'AuthenticationError' || /SASL|authenticat/i.test(e.message)) {
      const who =
        o.sasl.mechanism === 'AWS_MSK_IAM'
          ? 'with AWS MSK IAM (credentials from the AWS SDK chain)'
          : `as user '${o.sasl.username ?? ''}'`;
      const hint =
        o.sasl.mechanism === 'AWS_MSK_IAM'
          ? 'check the IAM policy allows kafka-cluster:Connect and the region'
          : "check sasl.username and the password's environment variable";
      return `kafka: SASL ${o.sasl.mechanism} login to ${brokers} ${who} was refused: ${innermost(e)}; ${hint}`;
    }
  }
  return undefined;
}

function* nested(err: unknown, depth = 0): Generator<Error> {
  if (depth > 5 || !(err instanceof Error)) return;
  yield err;
  if (err instanceof AggregateError) for (const inner of err.errors) yield* nested(inner, depth + 1);
  yield* nested(err.cause, depth + 1);
}

/** The broker's own words when it sent some (SaslAuthenticate's error message), else the last cause's. */
function innermost(e: Error): string {
  let last = e.message;
  for (const inner of nested(e)) {
    const said = (inner as { response?: { errorMessage?: unknown } }).response?.errorMessage;
    if (typeof said === 'string' && said !== '') return said;
    last = inner.message || last;
  }
  return last;
}
