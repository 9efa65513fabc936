/**
 * `sns` source: an HTTP endpoint SNS delivers to. Every message's signature is verified
 * (unless `verify: false`), its topic checked against the allow-list, and the POST answered
 * 200 only once its records are durable downstream, so SNS redelivers anything not yet
 * written. Busy or stopping: 503 with Retry-After, which SNS also retries.
 *
 * Freshness: a signature never expires, so a captured message could be replayed forever. A
 * message whose Timestamp is older than `max_message_age` or ahead of this clock by more than
 * `max_clock_skew` is refused. SNS retries an HTTP/S endpoint for at most 3,600 s (a hard limit
 * of every delivery policy; the default policy gives up after about a minute), so the default
 * of 2 h never refuses a genuine delivery or retry, while a replay works only for 2 h.
 *
 * Status codes: 200 delivered (or routed to the error output); 400 not an SNS message;
 * 403 forged, unsigned, tampered, from a topic not allowed, stale or from the future
 * (counted as `rejected`, and also as `stale` or `from_future`); 404 other path; 405 not POST;
 * 408 body too slow; 413 body larger than `max_body`; 415 content type; 500 a sink failed;
 * 503 busy, backpressured, acks too slow, or shutting down.
 */

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SNSClient } from '@aws-sdk/client-sns';
import { Type } from '@sinclair/typebox';
import {
  DEFAULT_MAX_DEPTH,
  deeperThan,
  fewBrackets,
  LimitOptions,
  tooDeepReason,
} from '../../runtime/limits.ts';
import type { RecordInit } from '../../runtime/record.ts';
import { AwsOptions, Duration, Size } from '../../spec/types.ts';
import { awsClientConfig } from '../aws/clients.ts';
import { sns } from '../aws/sdk.ts';
import {
  type CertFetcher,
  compileHostPattern,
  defaultCertHost,
  SignatureError,
  type SnsEnvelope,
  SnsSignatureVerifier,
} from '../aws/sns-signature.ts';
import { defineSource, type Source, type SourceContext, type StageContext } from '../define.ts';
import { HttpError, HttpIntake, header, send } from './http-intake.ts';

export const snsSource = defineSource({
  type: 'sns',
  kind: 'source',
  description:
    'Receives SNS notifications over HTTP, verifies their signatures, and answers 200 only once the records are durable.',
  meta: [
    {
      name: 'message_id',
      type: 'string',
      description: 'SNS MessageId (SNS may deliver a message twice; this identifies it)',
    },
    { name: 'topic_arn', type: 'string', description: 'ARN of the topic that published the message' },
    { name: 'timestamp', type: 'string', description: 'When SNS published the message, ISO 8601' },
    { name: 'subject', type: 'string', description: 'Subject of the message, when it has one' },
    {
      name: 'attributes',
      type: 'map(string, string)',
      description:
        'String-valued message attributes by name, when there are any (not covered by the signature)',
    },
  ],
  example: `
version: 1
name: sns-example
sources:
  consumption:
    type: sns
    listen: { address: 0.0.0.0, port: 8080, path: /sns }
    topic_arn: \${SNS_TOPIC_ARN:-arn:aws:sns:us-east-1:123456789012:historico-consumo}
    region: us-east-1
transforms:
  stamped:
    type: enrich
    from: [consumption]
    set:
      message_id: 'meta.message_id'
sinks:
  lake:
    type: file
    from: [stamped]
    dir: ./out
    path: 'consumption_{batch_start}{ext}'
`,
  options: Type.Object({
    listen: Type.Object(
      {
        address: Type.Optional(
          Type.String({ default: '127.0.0.1', description: 'Address to bind', examples: ['0.0.0.0'] }),
        ),
        port: Type.Integer({ minimum: 0, maximum: 65535, description: 'Port to bind', examples: [8080] }),
        path: Type.Optional(
          Type.String({ default: '/', pattern: '^/', description: 'Path SNS posts to', examples: ['/sns'] }),
        ),
      },
      { additionalProperties: false, description: 'Where the HTTP endpoint SNS posts to listens' },
    ),
    ...AwsOptions,
    topic_arn: Type.Optional(
      Type.Union(
        [Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })],
        {
          description:
            'Allowed topic ARNs: messages from other topics get 403 and their subscriptions are not confirmed. When absent, any topic is accepted',
          examples: ['arn:aws:sns:us-east-1:123456789012:consumo'],
        },
      ),
    ),
    verify: Type.Optional(
      Type.Boolean({
        default: true,
        description: 'Verify message signatures (SignatureVersion 1 and 2). Turn off only for local tests',
      }),
    ),
    cert_host: Type.Optional(
      Type.String({
        description:
          'Host pattern the SigningCertURL must match (HTTPS only; `*` matches within one DNS label; `host:port` for another port). Default sns.<region>.amazonaws.com',
        examples: ['sns.*.amazonaws.com'],
      }),
    ),
    subscribe: Type.Optional(
      Type.String({
        description:
          'When set, subscribe this URL (this endpoint as SNS reaches it) to each topic of `topic_arn` at start. The subscription is kept at stop, so SNS retries what arrives meanwhile',
        examples: ['http://127.0.0.1:8080/sns'],
      }),
    ),
    raw: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Raw message delivery: the body is the message itself, ids come from x-amz-sns-* headers. SNS does not sign raw messages, so this needs verify: false',
      }),
    ),
    codec: Type.Optional(
      Type.Union([Type.Literal('json'), Type.Literal('text')], {
        default: 'json',
        description:
          'How the message body becomes the record value; undecodable messages go to the error output',
      }),
    ),
    max_body: Type.Optional(
      Size({ default: '256KiB', description: 'Largest request body accepted (413 above)' }),
    ),
    max_depth: LimitOptions.max_depth,
    max_message_age: Type.Optional(
      Duration({
        default: '2h',
        description:
          'Oldest message Timestamp accepted; older ones get 403 (a replayed capture). SNS retries an HTTP/S endpoint for at most an hour under any delivery policy, so 2h never refuses a genuine retry',
      }),
    ),
    max_clock_skew: Type.Optional(
      Duration({
        default: '5m',
        description: 'How far a message Timestamp may be ahead of this machine’s clock before it gets 403',
      }),
    ),
    max_concurrent: Type.Optional(
      Type.Integer({
        minimum: 1,
        default: 512,
        description:
          'Open requests at once, those waiting for their acks included; more get 503 with Retry-After. ' +
          'Needs about delivery rate × sink flush interval',
      }),
    ),
    request_timeout: Type.Optional(
      Duration({
        default: '15s',
        description:
          'Longest a request may take, body and ack wait included (408 for a slow body, 503 for slow acks). ' +
          'SNS waits about 15 s for an answer, so keep sink buffers’ max_age well below it',
      }),
    ),
    accept_timeout: Type.Optional(
      Duration({
        default: '1s',
        description:
          'How long a message may wait for room in a full pipeline before the request gets 503 (backpressure)',
      }),
    ),
  }),
  check(o, report) {
    if (o.verify === false) {
      report(
        ['verify'],
        'insecure-setting',
        'signature verification is off: anyone who can reach this port can inject records',
        'warning',
      );
    }
    if (o.raw === true && o.verify !== false) {
      report(
        ['raw'],
        'insecure-setting',
        'SNS does not sign raw deliveries, so they cannot be verified: set verify: false explicitly to accept them',
      );
    }
    if (o.topic_arn === undefined) {
      report(
        ['topic_arn'],
        'insecure-setting',
        'no topic_arn allow-list: messages from any topic are accepted',
        'warning',
      );
    }
    if (o.subscribe && o.topic_arn === undefined) {
      report(['subscribe'], 'schema-value', 'subscribe needs topic_arn: the topics to subscribe to');
    }
  },
  create(o, ctx) {
    return new SnsHttpSource(o, ctx);
  },
  // Notification bodies as SNS posts them; signatures are not checked (test payloads are unsigned).
  decode(o, raw) {
    const records: RecordInit[] = [];
    const failed: { input: RecordInit; reason: string }[] = [];
    for (const r of raw) {
      let m: SnsEnvelope;
      try {
        m = parseEnvelope(Buffer.from(r.data));
      } catch (err) {
        failed.push({
          input: { value: Buffer.from(r.data).toString('utf8') },
          reason: (err as Error).message,
        });
        continue;
      }
      const { record, failure } = notificationRecord(
        m,
        r.data.length,
        o.codec,
        o.max_depth ?? DEFAULT_MAX_DEPTH,
      );
      if (r.meta) record.meta = { ...record.meta, ...r.meta };
      if (failure === undefined) records.push(record);
      else failed.push({ input: record, reason: failure });
    }
    return { records, failed };
  },
});

export interface SnsSourceOptions {
  listen: { address?: string; port: number; path?: string };
  region?: string;
  endpoint?: string;
  topic_arn?: string | string[];
  verify?: boolean;
  cert_host?: string;
  subscribe?: string;
  raw?: boolean;
  codec?: 'json' | 'text';
  max_body?: number;
  max_depth?: number;
  max_message_age?: number;
  max_clock_skew?: number;
  max_concurrent?: number;
  request_timeout?: number;
  accept_timeout?: number;
}

/**
 * Hooks for tests only (never reachable from a spec): how certificates and SubscribeURLs are
 * fetched, and the SNS client used by `subscribe`.
 */
export interface SnsSourceDeps {
  fetchCert?: CertFetcher;
  confirm?: (url: URL) => Promise<void>;
  sns?: SNSClient;
}

const JSON_TYPES = new Set(['text/plain', 'application/json']);

/** 2 h: twice SNS's hard limit on HTTP/S retry time (3,600 s). */
export const DEFAULT_MAX_MESSAGE_AGE = 2 * 3600_000;
export const DEFAULT_MAX_CLOCK_SKEW = 5 * 60_000;

export class SnsHttpSource implements Source {
  private readonly o: SnsSourceOptions;
  private readonly ctx: StageContext;
  private readonly deps: SnsSourceDeps;
  private readonly path: string;
  private readonly topics: Set<string> | undefined;
  private readonly verifier: SnsSignatureVerifier | undefined;
  private readonly confirmAllowed: (url: URL) => boolean;
  private readonly maxDepth: number;
  private readonly maxAge: number;
  private readonly maxSkew: number;
  private readonly region: string;
  private readonly intake: HttpIntake<string>;

  constructor(o: SnsSourceOptions, ctx: StageContext, deps: SnsSourceDeps = {}) {
    this.o = o;
    this.ctx = ctx;
    this.deps = deps;
    this.path = o.listen.path ?? '/';
    this.topics = o.topic_arn === undefined ? undefined : new Set([o.topic_arn].flat());
    const config = awsClientConfig(o);
    this.region = config.region;
    // Empty means unset, so a spec can write `cert_host: ${SNS_CERT_HOST:-}`.
    const certHost = o.cert_host || defaultCertHost(this.region);
    this.verifier =
      o.verify === false ? undefined : new SnsSignatureVerifier({ certHost, fetchCert: deps.fetchCert });
    // SubscribeURLs are fetched from SNS itself: the certificate host, or the configured
    // endpoint (moto, LocalStack), never from wherever an unverified message points.
    const certAllowed = compileHostPattern(certHost);
    const endpoint = config.endpoint ? new URL(config.endpoint) : undefined;
    this.confirmAllowed = (url) =>
      (url.protocol === 'https:' && certAllowed(url)) ||
      (endpoint !== undefined && url.origin === endpoint.origin);
    this.maxDepth = o.max_depth ?? DEFAULT_MAX_DEPTH;
    this.maxAge = o.max_message_age ?? DEFAULT_MAX_MESSAGE_AGE;
    this.maxSkew = o.max_clock_skew ?? DEFAULT_MAX_CLOCK_SKEW;
    this.intake = new HttpIntake<string>(
      {
        name: 'sns',
        listeningMessage: 'sns endpoint listening',
        listen: o.listen,
        path: this.path,
        maxBody: o.max_body ?? 256 * 1024,
        maxConcurrent: o.max_concurrent ?? 512,
        requestTimeout: o.request_timeout ?? 15_000,
        acceptTimeout: o.accept_timeout ?? 1_000,
        // SNS retries a 503, so one while stopping is a delivery put off like any other.
        stoppingIsBusy: true,
        reply,
        error: (message) => message,
        serve: (req, res, sc) => this.serve(req, res, sc),
        refused: (req, _res, err) => this.refuse(req, err.status, err.message, err.metric),
        configure: (server) => this.configure(server),
      },
      ctx,
    );
  }

  /** Resolves with the bound address once the server listens (port 0 picks a free port). */
  get listening(): Promise<AddressInfo> {
    return this.intake.listening;
  }

  async run(sc: SourceContext): Promise<void> {
    await this.intake.listen(sc);

    if (this.o.subscribe) {
      try {
        await this.subscribe(this.o.subscribe);
      } catch (e) {
        this.intake.closeNow();
        throw e;
      }
    }
    await this.intake.serveUntilStopped(sc);
  }

  close(): Promise<void> {
    return this.intake.close();
  }

  private configure(server: Server): void {
    // Node checks request timeouts on this interval; the default (30 s) lets slow clients linger.
    (server as Server & { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 1_000;
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const status =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      this.ctx.metrics.count('bad_requests');
      this.ctx.log.debug({ err, status }, 'sns client error');
      if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
        socket.end(
          `HTTP/1.1 ${status} ${process.getBuiltinModule('node:http').STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
        );
      }
      socket.destroy();
    });
  }

  private async subscribe(endpoint: string): Promise<void> {
    const client = this.deps.sns ?? new (sns().SNSClient)(awsClientConfig(this.o));
    const protocol = new URL(endpoint).protocol.replace(':', '');
    try {
      for (const topic of this.topics ?? []) {
        const out = await client.send(
          new (sns().SubscribeCommand)({
            TopicArn: topic,
            Protocol: protocol,
            Endpoint: endpoint,
            Attributes: this.o.raw ? { RawMessageDelivery: 'true' } : undefined,
            ReturnSubscriptionArn: true,
          }),
        );
        this.ctx.log.info({ topic, endpoint, subscription: out.SubscriptionArn }, 'subscribed to sns topic');
      }
    } finally {
      if (!this.deps.sns) client.destroy();
    }
  }

  private refuse(req: IncomingMessage, status: number, reason: string, metric?: string): void {
    const label = status === 403 ? 'rejected' : 'bad_requests';
    this.ctx.metrics.count(label);
    if (metric) this.ctx.metrics.count(metric);
    this.ctx.metrics.failed(`sns ${status}: ${reason}`);
    this.ctx.log.warn({ status, reason, remote: req.socket.remoteAddress }, 'sns request refused');
  }

  private async serve(req: IncomingMessage, res: ServerResponse, sc: SourceContext): Promise<void> {
    checkContentType(req.headers['content-type']);
    const body = await this.intake.readBody(req);
    const rawType = header(req, 'x-amz-sns-message-type');
    let m: SnsEnvelope;
    if (this.o.raw && rawType === 'Notification') {
      m = {
        Type: 'Notification',
        MessageId: header(req, 'x-amz-sns-message-id') ?? '',
        TopicArn: header(req, 'x-amz-sns-topic-arn') ?? '',
        Message: body.toString('utf8'),
        Timestamp: new Date().toISOString(),
      };
      if (!m.MessageId || !m.TopicArn) throw new HttpError(400, 'raw delivery without x-amz-sns-* headers');
    } else {
      m = parseEnvelope(body);
    }
    if (this.topics && !this.topics.has(m.TopicArn))
      throw new HttpError(403, `topic ${m.TopicArn} is not allowed`);
    if (this.verifier && !(this.o.raw && rawType === 'Notification')) {
      try {
        await this.verifier.verify(m);
      } catch (e) {
        if (e instanceof SignatureError) throw new HttpError(403, `signature: ${e.message}`);
        throw e;
      }
    }
    // Raw deliveries carry no Timestamp of their own (it is set to now above).
    if (!(this.o.raw && rawType === 'Notification')) this.checkFresh(m);
    switch (m.Type) {
      case 'Notification':
        return this.notification(m, body.length, res, sc);
      case 'SubscriptionConfirmation':
        return this.confirm(m, res);
      case 'UnsubscribeConfirmation':
        this.ctx.log.warn({ topic: m.TopicArn }, 'sns unsubscribed this endpoint');
        return reply(res, 200, 'ok');
      default:
        throw new HttpError(400, `unknown message type ${m.Type}`);
    }
  }

  /** Refuses a message whose signed Timestamp is too old or too far ahead: a replay, or a broken clock. */
  private checkFresh(m: SnsEnvelope, now = Date.now()): void {
    const at = Date.parse(m.Timestamp);
    if (Number.isNaN(at)) throw new HttpError(403, `Timestamp '${m.Timestamp}' is not a time`, 'stale');
    if (now - at > this.maxAge) {
      throw new HttpError(
        403,
        `message ${m.MessageId} is stale: its Timestamp ${m.Timestamp} is older than max_message_age (${this.maxAge / 1000}s)`,
        'stale',
      );
    }
    if (at - now > this.maxSkew) {
      throw new HttpError(
        403,
        `message ${m.MessageId} is from the future: its Timestamp ${m.Timestamp} is ahead of this clock by more than max_clock_skew (${this.maxSkew / 1000}s)`,
        'from_future',
      );
    }
  }

  private async confirm(m: SnsEnvelope, res: ServerResponse): Promise<void> {
    if (!this.topics) {
      // Confirming for any topic would let any AWS account subscribe us to its topic.
      this.ctx.log.warn({ topic: m.TopicArn }, 'not confirming an sns subscription: no topic_arn allow-list');
      throw new HttpError(403, 'subscriptions are confirmed only for topics in topic_arn');
    }
    let url: URL;
    try {
      url = new URL(m.SubscribeURL ?? '');
    } catch {
      throw new HttpError(400, 'SubscriptionConfirmation without a valid SubscribeURL');
    }
    if (!this.confirmAllowed(url)) throw new HttpError(403, `SubscribeURL host ${url.host} is not allowed`);
    try {
      await (this.deps.confirm ?? fetchConfirm)(url);
    } catch (e) {
      this.ctx.log.error({ err: e, topic: m.TopicArn }, 'sns subscription confirmation failed');
      return reply(res, 500, 'confirmation failed');
    }
    this.ctx.metrics.count('subscriptions_confirmed');
    this.ctx.log.info({ topic: m.TopicArn }, 'sns subscription confirmed');
    reply(res, 200, 'confirmed');
  }

  private async notification(
    m: SnsEnvelope,
    bytes: number,
    res: ServerResponse,
    sc: SourceContext,
  ): Promise<void> {
    const { record, failure } = notificationRecord(m, bytes, this.o.codec, this.maxDepth);

    await this.intake.deliver(res, (answer) => {
      const onAck = (err?: Error) => {
        if (err) {
          this.ctx.log.warn({ err, message_id: m.MessageId }, 'sns message not durable; SNS will redeliver');
          answer(500, 'not durable');
        } else answer(200, 'ok');
      };
      return failure === undefined ? sc.emit([record], onAck) : sc.fail(record, failure, onAck);
    });
  }
}

function reply(res: ServerResponse, status: number, text: string, retryAfter?: number): void {
  send(res, status, 'text/plain; charset=utf-8', text, retryAfter);
}

/** SNS posts `text/plain; charset=UTF-8`; JSON is accepted for hand-made requests. */
function checkContentType(value: string | undefined): void {
  if (value === undefined) throw new HttpError(415, 'missing content type');
  const [type, ...params] = value.split(';').map((s) => s.trim().toLowerCase());
  if (!JSON_TYPES.has(type))
    throw new HttpError(415, `content type ${type} is not text/plain or application/json`);
  for (const p of params) {
    if (p.startsWith('charset=') && !/^charset="?utf-?8"?$/.test(p))
      throw new HttpError(415, `charset must be UTF-8`);
  }
}

/** The record a notification becomes, or the reason it goes to the error output (live and `sluice test`). */
function notificationRecord(
  m: SnsEnvelope,
  bytes: number,
  codec: 'json' | 'text' | undefined,
  maxDepth: number,
): { record: RecordInit; failure?: string } {
  const meta: Record<string, unknown> = {
    message_id: m.MessageId,
    topic_arn: m.TopicArn,
    timestamp: m.Timestamp,
  };
  if (m.Subject !== undefined) meta.subject = m.Subject;
  if (m.MessageAttributes) {
    // Attributes are not covered by the signature: keep string values only, so nothing
    // arbitrary (or arbitrarily deep) rides along in the record's metadata.
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.MessageAttributes)) {
      if (typeof v?.Value === 'string') attributes[k] = v.Value;
    }
    meta.attributes = attributes;
  }
  const time = Date.parse(m.Timestamp);
  const base = { meta, position: m.MessageId, size: bytes, time: Number.isNaN(time) ? undefined : time };
  let value: unknown = m.Message;
  let failure: string | undefined;
  if (codec !== 'text') {
    try {
      value = JSON.parse(m.Message);
    } catch (e) {
      failure = `message is not JSON: ${(e as Error).message}`;
    }
    // The body's size is bounded by max_body; its depth is checked here.
    if (failure === undefined && !fewBrackets(m.Message, maxDepth) && deeperThan(value, maxDepth)) {
      failure = `message ${m.MessageId}: ${tooDeepReason(maxDepth)}`;
      value = m.Message;
    }
  }
  return { record: { ...base, value }, failure };
}

function parseEnvelope(body: Buffer): SnsEnvelope {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new HttpError(400, 'body is not an SNS message');
  const m = v as Record<string, unknown>;
  for (const f of ['Type', 'MessageId', 'TopicArn', 'Message', 'Timestamp']) {
    if (typeof m[f] !== 'string') throw new HttpError(400, `SNS message without ${f}`);
  }
  return m as unknown as SnsEnvelope;
}

async function fetchConfirm(url: URL): Promise<void> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: 'error' });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`SubscribeURL answered ${res.status}`);
}
