import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MetricsRegistry, type StageMetrics } from '../../src/runtime/metrics.ts';
import type { RecordInit } from '../../src/runtime/record.ts';
import type { SourceContext } from '../../src/stages/define.ts';
import { SnsHttpSource, type SnsSourceDeps, type SnsSourceOptions } from '../../src/stages/sources/sns.ts';
import { type KeyPair, makeCert, signed, TOPIC } from './sns-fixtures.ts';

let aws: KeyPair;
beforeAll(() => {
  aws = makeCert();
});

interface Emitted {
  records: RecordInit[];
  onAck?: (e?: Error) => void;
  failed?: string;
}

interface Harness {
  url: string;
  emitted: Emitted[];
  metrics: StageMetrics;
  confirmed: string[];
  abort: AbortController;
  running: Promise<void>;
  source: SnsHttpSource;
  /** Resolves when the n-th message has been handed to emit/fail. */
  nth(n: number): Promise<Emitted>;
  /** Makes emit hang (a full pipeline) until released. */
  block(): () => void;
}

const running: Harness[] = [];
afterEach(async () => {
  for (const h of running.splice(0)) {
    h.abort.abort();
    for (const e of h.emitted) e.onAck?.();
    await h.running;
    await h.source.close();
  }
});

async function start(opts: Partial<SnsSourceOptions> = {}, deps: SnsSourceDeps = {}): Promise<Harness> {
  const metrics = new MetricsRegistry('t').stage('sns', 'source', 'sns');
  const confirmed: string[] = [];
  const source = new SnsHttpSource(
    { listen: { port: 0, path: '/sns' }, topic_arn: TOPIC, region: 'us-east-1', ...opts },
    { name: 'sns', pipeline: 't', log: pino({ level: 'silent' }), metrics, stateDir: '.' },
    {
      fetchCert: async () => aws.cert,
      confirm: async (url) => {
        confirmed.push(url.href);
      },
      ...deps,
    },
  );
  const emitted: Emitted[] = [];
  const waiters: { n: number; resolve: (e: Emitted) => void }[] = [];
  let gate: Promise<void> | undefined;
  const push = async (e: Emitted) => {
    emitted.push(e);
    for (const w of waiters.filter((w) => w.n <= emitted.length)) w.resolve(emitted[w.n - 1]);
    if (gate) await gate;
  };
  const abort = new AbortController();
  const sc: SourceContext = {
    signal: abort.signal,
    emit: (records, onAck) => push({ records, onAck }),
    fail: (input, reason, onAck) => push({ records: [input], onAck, failed: reason }),
    checkpoints: { load: async () => undefined, commit() {}, flush: async () => {} },
  };
  const run = source.run(sc);
  const addr: AddressInfo = await source.listening;
  const h: Harness = {
    url: `http://127.0.0.1:${addr.port}/sns`,
    emitted,
    metrics,
    confirmed,
    abort,
    running: run,
    source,
    nth: (n) =>
      new Promise((resolve) => {
        if (emitted.length >= n) resolve(emitted[n - 1]);
        else waiters.push({ n, resolve });
      }),
    block() {
      let release!: () => void;
      gate = new Promise((r) => {
        release = r;
      });
      return () => {
        gate = undefined;
        release();
      };
    },
  };
  running.push(h);
  return h;
}

function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'text/plain; charset=UTF-8', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('sns source: notifications', () => {
  it('emits the decoded message with SNS metadata and answers 200 only after the ack', async () => {
    const h = await start();
    const m = signed(aws.key, {
      Subject: 'consumo',
      Message: JSON.stringify({ id_lote: 'L7', peso_medio: 401 }),
      MessageAttributes: { origem: { Type: 'String', Value: 'fazenda' } },
    });
    let answered = false;
    const res = post(h.url, m).then((r) => {
      answered = true;
      return r;
    });
    const e = await h.nth(1);
    expect(e.records).toHaveLength(1);
    const r = e.records[0];
    expect(r.value).toEqual({ id_lote: 'L7', peso_medio: 401 });
    expect(r.meta).toEqual({
      message_id: m.MessageId,
      topic_arn: TOPIC,
      timestamp: m.Timestamp,
      subject: 'consumo',
      attributes: { origem: 'fazenda' },
    });
    expect(r.position).toBe(m.MessageId);
    expect(r.time).toBe(Date.parse(m.Timestamp));
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    e.onAck?.();
    expect((await res).status).toBe(200);
  });

  it('answers 500 when a sink failed, so SNS redelivers', async () => {
    const h = await start();
    const res = post(h.url, signed(aws.key, {}));
    (await h.nth(1)).onAck?.(new Error('s3 down'));
    expect((await res).status).toBe(500);
  });

  it('keeps text messages as text with codec: text', async () => {
    const h = await start({ codec: 'text' });
    const res = post(h.url, signed(aws.key, { Message: 'not json {' }));
    const e = await h.nth(1);
    expect(e.records[0].value).toBe('not json {');
    e.onAck?.();
    expect((await res).status).toBe(200);
  });

  it('routes an authentic message that is not JSON to the error output, then answers 200', async () => {
    const h = await start();
    const res = post(h.url, signed(aws.key, { Message: 'not json {' }));
    const e = await h.nth(1);
    expect(e.failed).toMatch(/not JSON/);
    expect(e.records[0].value).toBe('not json {');
    e.onAck?.();
    expect((await res).status).toBe(200);
  });

  it('routes a message nested deeper than max_depth to the error output as its text, then answers 200', async () => {
    const h = await start({ max_depth: 3 });
    const deep = JSON.stringify({ a: { b: { c: { d: 1 } } } });
    const res = post(h.url, signed(aws.key, { Message: deep }));
    const e = await h.nth(1);
    expect(e.failed).toMatch(/: value nested deeper than 3 levels$/);
    expect(e.records[0].value).toBe(deep);
    e.onAck?.();
    expect((await res).status).toBe(200);
    // Exactly at the limit is a record.
    const ok = post(h.url, signed(aws.key, { Message: JSON.stringify({ a: { b: { c: 1 } } }) }));
    const e2 = await h.nth(2);
    expect(e2.failed).toBeUndefined();
    e2.onAck?.();
    expect((await ok).status).toBe(200);
  });

  it('accepts raw deliveries from x-amz-sns-* headers when verification is off', async () => {
    const h = await start({ raw: true, verify: false });
    const res = post(h.url, '{"a":1}', {
      'x-amz-sns-message-type': 'Notification',
      'x-amz-sns-message-id': 'raw-1',
      'x-amz-sns-topic-arn': TOPIC,
    });
    const e = await h.nth(1);
    expect(e.records[0].value).toEqual({ a: 1 });
    expect(e.records[0].meta).toMatchObject({ message_id: 'raw-1', topic_arn: TOPIC });
    e.onAck?.();
    expect((await res).status).toBe(200);
    const other = await post(h.url, '{"a":1}', {
      'x-amz-sns-message-type': 'Notification',
      'x-amz-sns-message-id': 'raw-2',
      'x-amz-sns-topic-arn': `${TOPIC}-other`,
    });
    expect(other.status).toBe(403);
  });
});

describe('sns source: refusals', () => {
  it('answers 403 to forged, tampered, unsigned and wrong-topic messages, counting and emitting nothing', async () => {
    const h = await start();
    const attacker = makeCert();
    const m = signed(aws.key, {});
    const bad = [
      signed(attacker.key, {}),
      { ...m, Message: '{"id_lote":"forged"}' },
      { ...m, Signature: undefined },
      signed(aws.key, { TopicArn: `${TOPIC}-other` }),
      signed(attacker.key, {}, '2', 'https://evil.example.com/SimpleNotificationService-x.pem'),
    ];
    for (const b of bad) expect((await post(h.url, b)).status).toBe(403);
    expect(h.emitted).toEqual([]);
    expect(h.metrics.errors).toBe(bad.length);
    expect(h.metrics.extra.get('rejected')).toBe(bad.length);
  });

  it('answers 403 to validly signed messages that are stale or from the future, counting why', async () => {
    const h = await start();
    const at = (ms: number) => new Date(Date.now() + ms).toISOString();
    const HOUR = 3600_000;
    const refused = [
      signed(aws.key, { Timestamp: '2019-04-01T10:00:00.000Z' }),
      signed(aws.key, { Timestamp: at(-2 * HOUR - 60_000) }),
      signed(aws.key, { Timestamp: at(10 * 60_000) }),
      signed(aws.key, { Timestamp: 'yesterday' }),
    ];
    const statuses = [];
    for (const m of refused) statuses.push((await post(h.url, m)).status);
    expect(statuses).toEqual([403, 403, 403, 403]);
    expect(h.emitted).toEqual([]);
    expect(h.metrics.extra.get('rejected')).toBe(4);
    expect(h.metrics.extra.get('stale')).toBe(3);
    expect(h.metrics.extra.get('from_future')).toBe(1);

    // Within the window: SNS's longest retry (an hour), and a clock a little behind ours.
    for (const [i, ts] of [at(-HOUR), at(2 * 60_000)].entries()) {
      const res = post(h.url, signed(aws.key, { Timestamp: ts }));
      (await h.nth(i + 1)).onAck?.();
      expect((await res).status).toBe(200);
    }
  });

  it('honours max_message_age and max_clock_skew, also for subscription confirmations', async () => {
    const h = await start({ max_message_age: 60_000, max_clock_skew: 1_000 });
    const at = (ms: number) => new Date(Date.now() + ms).toISOString();
    expect((await post(h.url, signed(aws.key, { Timestamp: at(-120_000) }))).status).toBe(403);
    expect((await post(h.url, signed(aws.key, { Timestamp: at(30_000) }))).status).toBe(403);
    const confirmation = signed(aws.key, {
      Type: 'SubscriptionConfirmation',
      Timestamp: at(-120_000),
      Token: 't',
      SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t',
      Message: 'confirm',
    });
    expect((await post(h.url, confirmation)).status).toBe(403);
    expect(h.confirmed).toEqual([]);
    expect(h.metrics.extra.get('stale')).toBe(2);
    expect(h.metrics.extra.get('from_future')).toBe(1);
  });

  it('rejects bad input with the right status and keeps serving', async () => {
    const h = await start({ max_body: 1024 });
    expect((await post(h.url, 'x'.repeat(5000))).status).toBe(413);
    expect((await post(h.url, '{not json')).status).toBe(400);
    expect((await post(h.url, { Type: 'Notification' })).status).toBe(400);
    expect((await post(h.url, '[]')).status).toBe(400);
    expect(
      (await post(h.url, signed(aws.key, {}), { 'content-type': 'application/x-www-form-urlencoded' }))
        .status,
    ).toBe(415);
    expect(
      (await post(h.url, signed(aws.key, {}), { 'content-type': 'text/plain; charset=latin1' })).status,
    ).toBe(415);
    expect((await fetch(h.url)).status).toBe(405);
    expect((await post(h.url.replace('/sns', '/other'), signed(aws.key, {}))).status).toBe(404);
    // A body that grows past the limit without announcing its length (chunked).
    const chunked = await fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode('y'.repeat(500)));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(h.emitted).toEqual([]);

    const res = post(h.url, signed(aws.key, {}));
    (await h.nth(1)).onAck?.();
    expect((await res).status).toBe(200);
  });

  it('answers 408 to a client that stalls mid-body while serving others', async () => {
    const h = await start({ request_timeout: 800 });
    const port = Number(new URL(h.url).port);
    const slow = connect(port, '127.0.0.1');
    const answer = new Promise<string>((resolve) => {
      let text = '';
      slow.on('data', (d) => {
        text += d.toString();
      });
      slow.on('close', () => resolve(text));
      slow.on('error', () => resolve(text));
    });
    slow.write(
      'POST /sns HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n{"Type":',
    );
    const started = Date.now();
    const res = post(h.url, signed(aws.key, {}));
    (await h.nth(1)).onAck?.();
    expect((await res).status).toBe(200);
    expect(await answer).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

function rawExchange(port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  return new Promise((resolve) => {
    let got = '';
    socket.on('data', (d) => {
      got += d.toString();
    });
    socket.on('close', () => resolve(got));
    socket.on('error', () => resolve(got));
    socket.write(text);
  });
}

describe('sns source: slow and malformed clients', () => {
  it('answers 408 to a client that never finishes its headers, and keeps serving', async () => {
    const h = await start({ request_timeout: 800 });
    const port = Number(new URL(h.url).port);
    const stalled = rawExchange(port, 'POST /sns HTTP/1.1\r\nHost: x\r\nContent-Type: text/pl');
    const res = post(h.url, signed(aws.key, {}));
    (await h.nth(1)).onAck?.();
    expect((await res).status).toBe(200);
    expect(await stalled).toMatch(/^HTTP\/1\.1 408/);
  });

  it('answers 400 to bytes that are not HTTP', async () => {
    const h = await start();
    const port = Number(new URL(h.url).port);
    expect(await rawExchange(port, 'HELLO\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    const res = post(h.url, signed(aws.key, {}));
    (await h.nth(1)).onAck?.();
    expect((await res).status).toBe(200);
  });
});

describe('sns source: subscriptions', () => {
  it('confirms a signed subscription for an allowed topic only', async () => {
    const h = await start();
    const url = 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=abc';
    const ok = signed(aws.key, { Type: 'SubscriptionConfirmation', Token: 'abc', SubscribeURL: url });
    expect((await post(h.url, ok)).status).toBe(200);
    expect(h.confirmed).toEqual([url]);

    const otherTopic = signed(aws.key, {
      Type: 'SubscriptionConfirmation',
      Token: 'abc',
      SubscribeURL: url,
      TopicArn: `${TOPIC}-other`,
    });
    expect((await post(h.url, otherTopic)).status).toBe(403);
    const elsewhere = signed(aws.key, {
      Type: 'SubscriptionConfirmation',
      Token: 'abc',
      SubscribeURL: 'https://evil.example.com/confirm',
    });
    expect((await post(h.url, elsewhere)).status).toBe(403);
    expect(h.confirmed).toEqual([url]);
    expect(h.emitted).toEqual([]);
  });

  it('answers 200 to an unsubscribe confirmation and emits nothing', async () => {
    const h = await start();
    const m = signed(aws.key, {
      Type: 'UnsubscribeConfirmation',
      Token: 't',
      SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription',
    });
    expect((await post(h.url, m)).status).toBe(200);
    expect(h.emitted).toEqual([]);
  });
});

describe('sns source: backpressure and shutdown', () => {
  it('answers 503 with Retry-After when the pipeline does not accept in time', async () => {
    const h = await start({ accept_timeout: 200 });
    const release = h.block();
    const res = await post(h.url, signed(aws.key, {}));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    release();
  });

  it('answers 503 beyond max_concurrent requests', async () => {
    const h = await start({ max_concurrent: 2 });
    const a = post(h.url, signed(aws.key, {}));
    const b = post(h.url, signed(aws.key, {}));
    await h.nth(2);
    const c = await post(h.url, signed(aws.key, {}));
    expect(c.status).toBe(503);
    expect(c.headers.get('retry-after')).toBe('1');
    h.emitted[0].onAck?.();
    h.emitted[1].onAck?.();
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
    const d = post(h.url, signed(aws.key, {}));
    (await h.nth(3)).onAck?.();
    expect((await d).status).toBe(200);
  });

  it('answers 503 when acks take longer than request_timeout', async () => {
    const h = await start({ request_timeout: 300 });
    const res = await post(h.url, signed(aws.key, {}));
    expect(res.status).toBe(503);
    expect(h.emitted).toHaveLength(1);
  });

  it('on stop answers new requests 503, still answers pending ones after their acks', async () => {
    const h = await start();
    const pending = post(h.url, signed(aws.key, {}));
    const e = await h.nth(1);
    h.abort.abort();
    await h.running;
    const late = await post(h.url, signed(aws.key, {})).catch(() => undefined);
    // The listener is closed or the request is refused: either way SNS retries later.
    if (late) expect(late.status).toBe(503);
    e.onAck?.();
    expect((await pending).status).toBe(200);
    expect(h.emitted).toHaveLength(1);
  });
});
