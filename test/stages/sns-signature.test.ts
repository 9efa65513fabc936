import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkCertUrl,
  compileHostPattern,
  httpsCertFetcher,
  SignatureError,
  type SnsEnvelope,
  SnsSignatureVerifier,
  stringToSign,
} from '../../src/stages/aws/sns-signature.ts';
import { CERT_URL, type KeyPair, makeCert, signed, TOPIC } from './sns-fixtures.ts';

let aws: KeyPair;
let attacker: KeyPair;

beforeAll(() => {
  aws = makeCert();
  attacker = makeCert();
});

function verifier(pem = () => aws.cert) {
  const fetched: string[] = [];
  const v = new SnsSignatureVerifier({
    certHost: 'sns.us-east-1.amazonaws.com',
    fetchCert: async (url) => {
      fetched.push(url.href);
      return pem();
    },
  });
  return { v, fetched };
}

async function rejection(p: Promise<unknown>): Promise<SignatureError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SignatureError);
  return e as SignatureError;
}

describe('string to sign', () => {
  it('lists a notification’s fields in AWS’s order, Subject only when present', () => {
    const m = {
      Type: 'Notification',
      MessageId: 'm1',
      TopicArn: TOPIC,
      Message: 'hello\nworld',
      Timestamp: '2024-03-20T10:30:45.123Z',
      Subject: 'S',
    };
    expect(stringToSign(m)).toBe(
      `Message\nhello\nworld\nMessageId\nm1\nSubject\nS\nTimestamp\n2024-03-20T10:30:45.123Z\nTopicArn\n${TOPIC}\nType\nNotification\n`,
    );
    const { Subject: _, ...noSubject } = m;
    expect(stringToSign(noSubject)).toBe(
      `Message\nhello\nworld\nMessageId\nm1\nTimestamp\n2024-03-20T10:30:45.123Z\nTopicArn\n${TOPIC}\nType\nNotification\n`,
    );
  });

  it('includes SubscribeURL and Token for confirmations and refuses when one is missing', () => {
    const m: SnsEnvelope = {
      Type: 'SubscriptionConfirmation',
      MessageId: 'm2',
      TopicArn: TOPIC,
      Message: 'confirm',
      Timestamp: 't',
      Token: 'tok',
      SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription',
    };
    expect(stringToSign(m)).toBe(
      `Message\nconfirm\nMessageId\nm2\nSubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription\nTimestamp\nt\nToken\ntok\nTopicArn\n${TOPIC}\nType\nSubscriptionConfirmation\n`,
    );
    expect(stringToSign({ ...m, Token: undefined })).toBeUndefined();
    expect(stringToSign({ ...m, Type: 'Other' })).toBeUndefined();
  });
});

describe('signature verification', () => {
  it('accepts a valid SignatureVersion 1 (SHA1) message', async () => {
    const { v } = verifier();
    await v.verify(signed(aws.key, { Subject: 'consumo' }, '1'));
  });

  it('accepts a valid SignatureVersion 2 (SHA256) message, with and without Subject', async () => {
    const { v } = verifier();
    await v.verify(signed(aws.key, { Subject: 'consumo' }, '2'));
    await v.verify(signed(aws.key, {}, '2'));
  });

  it('accepts a signed subscription confirmation', async () => {
    const { v } = verifier();
    await v.verify(
      signed(aws.key, {
        Type: 'SubscriptionConfirmation',
        Token: 'abc',
        SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc',
      }),
    );
  });

  it('rejects a tampered message, subject, timestamp or a version swap', async () => {
    const { v } = verifier();
    const m = signed(aws.key, { Subject: 'consumo' });
    for (const tampered of [
      { ...m, Message: m.Message.replace('420.5', '999') },
      { ...m, Subject: 'other' },
      { ...m, Subject: undefined },
      { ...m, Timestamp: new Date(0).toISOString() },
      { ...m, SignatureVersion: '1' },
    ]) {
      expect((await rejection(v.verify(tampered))).code).toBe('bad-signature');
    }
  });

  it('rejects a message replayed under another topic (TopicArn is signed)', async () => {
    const { v } = verifier();
    const m = signed(aws.key, {});
    const e = await rejection(v.verify({ ...m, TopicArn: 'arn:aws:sns:us-east-1:123456789012:other' }));
    expect(e.code).toBe('bad-signature');
  });

  it('rejects a message signed with a key other than the certificate’s', async () => {
    const { v } = verifier();
    expect((await rejection(v.verify(signed(attacker.key, {})))).code).toBe('bad-signature');
  });

  it('rejects unsigned messages and missing fields before fetching anything', async () => {
    const { v, fetched } = verifier();
    const m = signed(aws.key, {});
    expect((await rejection(v.verify({ ...m, Signature: undefined }))).code).toBe('unsigned');
    expect((await rejection(v.verify({ ...m, SigningCertURL: undefined }))).code).toBe('unsigned');
    expect((await rejection(v.verify({ ...m, SignatureVersion: undefined }))).code).toBe('unsigned');
    expect((await rejection(v.verify({ ...m, SignatureVersion: '3' }))).code).toBe('bad-version');
    const { MessageId: _, ...noId } = m;
    expect((await rejection(v.verify(noId as SnsEnvelope))).code).toBe('unsigned');
    const conf = signed(aws.key, { Type: 'SubscriptionConfirmation', Token: 't', SubscribeURL: 'https://x' });
    expect((await rejection(v.verify({ ...conf, Token: undefined }))).code).toBe('unsigned');
    expect(fetched).toEqual([]);
  });

  it('never fetches a certificate from a host outside the allow-list, over HTTP, or not a .pem', async () => {
    const { v, fetched } = verifier(() => attacker.cert);
    for (const url of [
      'https://evil.example.com/SimpleNotificationService-x.pem',
      'http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem',
      'https://sns.us-east-1.amazonaws.com.evil.example.com/x.pem',
      'https://sns.us-east-1.amazonaws.com@evil.example.com/x.pem',
      'https://user:pw@sns.us-east-1.amazonaws.com/x.pem',
      'https://sns.us-east-1.amazonaws.com:8443/x.pem',
      'https://sns.eu-west-1.amazonaws.com/x.pem',
      'https://sns.us-east-1.amazonaws.com/x.txt',
      'not a url',
    ]) {
      // Signed with the attacker's key and pointing at the attacker's certificate: only the URL check stops it.
      const e = await rejection(v.verify(signed(attacker.key, {}, '2', url)));
      expect(e.code, url).toBe('cert-url');
    }
    expect(fetched).toEqual([]);
  });

  it('rejects a certificate outside its validity period', async () => {
    const v = new SnsSignatureVerifier({
      certHost: 'sns.us-east-1.amazonaws.com',
      fetchCert: async () => aws.cert,
      now: () => Date.now() + 10 * 86_400_000,
    });
    expect((await rejection(v.verify(signed(aws.key, {})))).code).toBe('cert-invalid');
  });

  it('rejects garbage where a certificate should be', async () => {
    const { v } = verifier(() => 'not a certificate');
    expect((await rejection(v.verify(signed(aws.key, {})))).code).toBe('cert-invalid');
  });

  it('fetches each certificate once, and retries a failed fetch', async () => {
    let fail = true;
    const fetched: string[] = [];
    const v = new SnsSignatureVerifier({
      certHost: 'sns.us-east-1.amazonaws.com',
      fetchCert: async (url) => {
        fetched.push(url.href);
        if (fail) throw new Error('connection reset');
        return aws.cert;
      },
    });
    expect((await rejection(v.verify(signed(aws.key, {})))).code).toBe('cert-fetch');
    fail = false;
    await Promise.all([
      v.verify(signed(aws.key, {})),
      v.verify(signed(aws.key, {})),
      v.verify(signed(aws.key, {})),
    ]);
    await v.verify(signed(aws.key, {}));
    expect(fetched).toEqual([CERT_URL, CERT_URL]);
  });
});

describe('host patterns', () => {
  it('matches one label per * and the port exactly', () => {
    const p = compileHostPattern('sns.*.amazonaws.com');
    expect(p(new URL('https://sns.us-east-1.amazonaws.com/a.pem'))).toBe(true);
    expect(p(new URL('https://sns.a.b.amazonaws.com/a.pem'))).toBe(false);
    expect(p(new URL('https://snsXus-east-1.amazonaws.com/a.pem'))).toBe(false);
    const local = compileHostPattern('127.0.0.1:8443');
    expect(local(new URL('https://127.0.0.1:8443/a.pem'))).toBe(true);
    expect(local(new URL('https://127.0.0.1/a.pem'))).toBe(false);
    expect(() => checkCertUrl('https://127.0.0.1:8443/a.pem', local)).not.toThrow();
  });
});

describe('HTTPS certificate fetcher', () => {
  let server: Server;
  let port: number;
  let tls: KeyPair;

  beforeAll(async () => {
    tls = makeCert({ cn: '127.0.0.1', san: 'IP:127.0.0.1' });
    server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      if (req.url === '/cert.pem') res.end(aws.cert);
      else if (req.url === '/moved.pem') {
        res.writeHead(302, { Location: '/cert.pem' });
        res.end();
      } else if (req.url === '/big.pem') res.end(Buffer.alloc(100_000, 65));
      else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('fetches over TLS from a server it trusts, and verifies with what it fetched', async () => {
    const v = new SnsSignatureVerifier({
      certHost: `127.0.0.1:${port}`,
      fetchCert: httpsCertFetcher({ ca: tls.cert }),
    });
    await v.verify(signed(aws.key, {}, '2', `https://127.0.0.1:${port}/cert.pem`));
    const e = await rejection(v.verify(signed(attacker.key, {}, '2', `https://127.0.0.1:${port}/cert.pem`)));
    expect(e.code).toBe('bad-signature');
  });

  it('refuses an untrusted TLS certificate, redirects, errors and oversized answers', async () => {
    const untrusted = new SnsSignatureVerifier({ certHost: `127.0.0.1:${port}` });
    expect(
      (await rejection(untrusted.verify(signed(aws.key, {}, '2', `https://127.0.0.1:${port}/cert.pem`))))
        .code,
    ).toBe('cert-fetch');
    const v = new SnsSignatureVerifier({
      certHost: `127.0.0.1:${port}`,
      fetchCert: httpsCertFetcher({ ca: tls.cert }),
    });
    for (const path of ['/moved.pem', '/missing.pem', '/big.pem']) {
      const e = await rejection(v.verify(signed(aws.key, {}, '2', `https://127.0.0.1:${port}${path}`)));
      expect(e.code, path).toBe('cert-fetch');
    }
  });
});
