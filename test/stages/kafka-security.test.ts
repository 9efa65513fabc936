/**
 * The security block of the Kafka stages without a broker: what validation accepts, refuses and
 * warns about (secrets only as ${VAR}, never echoed), the MSK IAM token (a SigV4 presigned
 * kafka-cluster:Connect request, checked here against a signature computed by hand from the
 * same credentials), and the TLS files read at start. A real MSK cluster is not reachable from
 * the tests, so the token is checked for its form and signature, not against MSK.
 */
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatHuman } from '../../src/cli/format.ts';
import { findSecrets } from '../../src/spec/secrets.ts';
import { validateText } from '../../src/spec/validate.ts';
import { kafkaConnectionSecurity, mskIamToken, regionOfBrokers } from '../../src/stages/kafka/security.ts';
import { loadTls } from '../../src/stages/tls.ts';

const FILE = 'secure.yaml';

/** A spec whose kafka sink has `block` (YAML lines, indented for the sink's options). */
function spec(block: string, kind: 'source' | 'sink' = 'sink'): string {
  const stage =
    kind === 'sink'
      ? `sinks:\n  out:\n    type: kafka\n    from: [gen]\n    brokers: 127.0.0.1:9094\n    topic: t\n${block}`
      : `sinks:\n  out: { type: stdout, from: [in] }\n`;
  const sources =
    kind === 'sink'
      ? 'sources:\n  gen: { type: generate, count: 1, fields: { a: "1" } }\n'
      : `sources:\n  in:\n    type: kafka\n    brokers: 127.0.0.1:9094\n    topics: [t]\n    group: g\n${block}`;
  return `version: 1\nname: secure\n${sources}${stage}`;
}

function check(text: string, env: Record<string, string> = {}) {
  const result = validateText(FILE, text, env);
  const shown = formatHuman(result.diagnostics, new Map([[FILE, text]]), false);
  return { ...result, shown, codes: result.diagnostics.map((d) => `${d.severity}:${d.code}`) };
}

describe('kafka security options', () => {
  it('take the password from the environment and never show it', () => {
    const text = spec(
      '    tls: { ca_file: /etc/ca.pem }\n    sasl: { mechanism: SCRAM-SHA-512, username: app, password: ${KAFKA_PASSWORD} }\n',
    );
    const r = check(text, { KAFKA_PASSWORD: 'from-the-env-123' });
    expect(r.codes).toEqual([]);
    expect(r.spec?.stages.find((s) => s.name === 'out')?.options.sasl).toEqual({
      mechanism: 'SCRAM-SHA-512',
      username: 'app',
      password: 'from-the-env-123',
    });
  });

  it('refuse a literal password, or one hidden in a default, and mask it in the output', () => {
    for (const written of ['hunter2-literal', "'hunter2-literal'", '${KAFKA_PASSWORD:-hunter2-literal}']) {
      const text = spec(
        `    tls: true\n    sasl: { mechanism: SCRAM-SHA-256, username: app, password: ${written} }\n`,
        'source',
      );
      const r = check(text, { KAFKA_PASSWORD: 'x' });
      expect(r.codes, written).toContain('error:literal-credential');
      const d = r.diagnostics.find((x) => x.code === 'literal-credential');
      expect(d?.message).toContain("'sasl.password' is a secret");
      expect(r.shown).not.toContain('hunter2-literal');
    }
  });

  it('accept an empty default, so a shipped spec validates where the variable is unset', () => {
    const text = spec(
      '    tls: true\n    sasl: { mechanism: PLAIN, username: app, password: "${KAFKA_PASSWORD:-}" }\n',
    );
    expect(check(text).codes).toEqual([]);
  });

  it('refuse a private key written in the spec, wherever it is', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----';
    const text = spec(`    tls: { cert_file: /c.pem, key: "${pem}" }\n`);
    const r = check(text);
    expect(r.codes.filter((c) => c === 'error:literal-credential').length).toBeGreaterThanOrEqual(1);
    expect(r.shown).not.toContain('MIIEvQIBADANBgkqhkiG9w0BAQEFAASC');
    expect(findSecrets(`client: "${pem}"`).map((s) => s.kind)).toEqual(['private-key']);
  });

  it('check the block: a key with its certificate, one source per piece, mechanisms and their fields', () => {
    const cases: [string, string][] = [
      ['    tls: { cert_file: /c.pem }\n', 'a client certificate needs its private key'],
      ['    tls: { ca_file: /a.pem, ca: "x" }\n', 'give `ca_file` or `ca`, not both'],
      ['    sasl: { mechanism: SCRAM-SHA-512, username: app }\n', 'SCRAM-SHA-512 needs sasl.password'],
      ['    sasl: { mechanism: AWS_MSK_IAM, username: app }\n', 'AWS_MSK_IAM takes no username'],
      ['    tls: false\n    sasl: { mechanism: AWS_MSK_IAM }\n', 'AWS_MSK_IAM needs TLS'],
      ['    sasl: { mechanism: SCRAM-SHA-1, username: a, password: "${P}" }\n', 'sasl.mechanism'],
    ];
    for (const [block, message] of cases) {
      const r = check(spec(block), { P: 'p' });
      expect(
        r.diagnostics.some((d) => d.severity === 'error' && d.message.includes(message)),
        block,
      ).toBe(true);
    }
  });

  it('warn about PLAIN in the clear and about skipping verification', () => {
    const plain = check(spec('    sasl: { mechanism: PLAIN, username: a, password: "${P}" }\n'), { P: 'p' });
    expect(plain.codes).toEqual(['warning:insecure-setting']);
    expect(plain.diagnostics[0].message).toContain('PLAIN without tls');
    const skip = check(spec('    tls: { insecure_skip_verify: true }\n'));
    expect(skip.codes).toEqual(['warning:insecure-setting']);
  });
});

describe('client options from the security block', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'));

  it('read the TLS files at start and name a missing one without its content', async () => {
    writeFileSync(join(dir, 'ca.pem'), 'CA-PEM');
    const ok = await kafkaConnectionSecurity(
      { tls: { ca_file: join(dir, 'ca.pem'), server_name: 'kafka.internal' } },
      ['b:9093'],
    );
    expect(ok.tls).toMatchObject({ ca: 'CA-PEM', rejectUnauthorized: true });
    expect(ok.tlsServerName).toBe('kafka.internal');
    await expect(loadTls({ key_file: join(dir, 'absent.key') }, 'kafka')).rejects.toThrow(
      `kafka: cannot read the TLS client key file ${join(dir, 'absent.key')}: no such file`,
    );
  });

  it('turn TLS on for AWS_MSK_IAM and wire a token provider for OAUTHBEARER', async () => {
    const s = await kafkaConnectionSecurity({ sasl: { mechanism: 'AWS_MSK_IAM' } }, [
      'b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com:9098',
    ]);
    expect(s.tls).toEqual({ rejectUnauthorized: true });
    expect(s.sasl?.mechanism).toBe('OAUTHBEARER');
    expect(typeof s.sasl?.token).toBe('function');
  });

  it('find the region in MSK broker names', () => {
    expect(regionOfBrokers(['b-2.c.x1.c3.kafka.sa-east-1.amazonaws.com:9098'])).toBe('sa-east-1');
    expect(regionOfBrokers(['boot-x.c.kafka-serverless.us-east-2.amazonaws.com:9098'])).toBe('us-east-2');
    expect(regionOfBrokers(['127.0.0.1:9094'])).toBeUndefined();
  });
});

describe('the AWS MSK IAM token', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('is a presigned kafka-cluster:Connect request signed with the default chain’s credentials', async () => {
    // The environment is the first link of the SDK's default chain.
    process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLEKEY000001';
    process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    process.env.AWS_SESSION_TOKEN = 'session-token-example';
    delete process.env.AWS_PROFILE;
    const token = await mskIamToken('sa-east-1');
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/); // base64url without padding
    const url = new URL(Buffer.from(token, 'base64url').toString('utf8'));
    expect(url.protocol).toBe('https:');
    expect(url.host).toBe('kafka.sa-east-1.amazonaws.com');
    const q = url.searchParams;
    expect(q.get('Action')).toBe('kafka-cluster:Connect');
    expect(q.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    const date = q.get('X-Amz-Date') ?? '';
    const scope = `${date.slice(0, 8)}/sa-east-1/kafka-cluster/aws4_request`;
    expect(q.get('X-Amz-Credential')).toBe(`AKIDEXAMPLEKEY000001/${scope}`);
    expect(q.get('X-Amz-Security-Token')).toBe('session-token-example');
    expect(Number(q.get('X-Amz-Expires'))).toBe(900);
    expect(q.get('X-Amz-SignedHeaders')).toBe('host');

    // SigV4 by hand: the canonical request of the signed parameters (User-Agent is added after
    // signing, the signature itself is not signed), then the key derivation chain.
    const enc = (s: string) =>
      encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    const signed = [...q.entries()]
      .filter(([k]) => k !== 'X-Amz-Signature' && k !== 'User-Agent')
      .map(([k, v]) => `${enc(k)}=${enc(v)}`)
      .sort()
      .join('&');
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const canonical = ['GET', '/', signed, `host:${url.host}\n`, 'host', sha('')].join('\n');
    const toSign = ['AWS4-HMAC-SHA256', date, scope, sha(canonical)].join('\n');
    const hmac = (key: string | Buffer, s: string) => createHmac('sha256', key).update(s).digest();
    let key = hmac(`AWS4${process.env.AWS_SECRET_ACCESS_KEY}`, date.slice(0, 8));
    for (const part of ['sa-east-1', 'kafka-cluster', 'aws4_request']) key = hmac(key, part);
    expect(q.get('X-Amz-Signature')).toBe(createHmac('sha256', key).update(toSign).digest('hex'));
  });

  it('says which region it could not sign for when the chain has no credentials', async () => {
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'])
      delete process.env[k];
    process.env.AWS_CONFIG_FILE = '/nonexistent/config';
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials';
    // No instance metadata on a test machine: make the IMDS lookup fail at once.
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    await expect(mskIamToken('us-east-1')).rejects.toThrow(/AWS_MSK_IAM: cannot sign a token for us-east-1/);
  }, 20_000);
});
