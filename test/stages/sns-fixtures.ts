/** Keys, certificates and signed SNS messages the SNS tests make themselves (with the openssl CLI). */

import { execFileSync } from 'node:child_process';
import { randomUUID, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SnsEnvelope } from '../../src/stages/aws/sns-signature.ts';

export interface KeyPair {
  key: string;
  cert: string;
}

/** A self-signed RSA certificate; `san` e.g. `IP:127.0.0.1` for a TLS server. */
export function makeCert(opts: { cn?: string; san?: string; days?: number } = {}): KeyPair {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cert-'));
  try {
    const args = [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-days',
      String(opts.days ?? 2),
      '-subj',
      `/CN=${opts.cn ?? 'sns.amazonaws.com'}`,
    ];
    if (opts.san) args.push('-addext', `subjectAltName=${opts.san}`);
    execFileSync('openssl', args, { stdio: 'ignore' });
    return {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const TOPIC = 'arn:aws:sns:us-east-1:123456789012:consumo';
export const CERT_URL = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem';

/** Signs as AWS documents it, building the string to sign here independently of the code under test. */
export function signed(
  key: string,
  fields: Partial<SnsEnvelope> & { Type?: string },
  version: '1' | '2' = '2',
  certUrl = CERT_URL,
): SnsEnvelope {
  const m: SnsEnvelope = {
    Type: 'Notification',
    MessageId: randomUUID(),
    TopicArn: TOPIC,
    Message: JSON.stringify({ id_lote: 'L1', peso_medio: 420.5 }),
    Timestamp: new Date().toISOString(),
    ...fields,
    SignatureVersion: version,
    SigningCertURL: certUrl,
  };
  const order =
    m.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const text = order
    .filter((f) => (m as unknown as Record<string, unknown>)[f] !== undefined)
    .map((f) => `${f}\n${(m as unknown as Record<string, string>)[f]}\n`)
    .join('');
  m.Signature = sign(version === '1' ? 'sha1' : 'sha256', Buffer.from(text), key).toString('base64');
  return m;
}
