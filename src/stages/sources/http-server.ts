/**
 * `http_server` source: an HTTP endpoint that takes records in POST bodies (ndjson, one JSON
 * value or array, or text lines) and answers only once they are durable downstream, so a client
 * that gets no 200 sends again (at-least-once, as the SNS source does).
 *
 * Status codes: 200 with `{"accepted": n, "failed": m}` once every record is delivered or in the
 * error output (a line that is not JSON, too deep or too large is `failed`, the others still go
 * through); 400 body that is not JSON (codec json); 401 missing or wrong token or signature;
 * 404 other path; 405 not POST; 408 body too slow; 413 body larger than `max_body`; 500 a sink
 * failed for good (`on_error: stop`); 503 with Retry-After: too many requests open
 * (`max_concurrent`), the pipeline full for `accept_timeout` (backpressure), acks slower than
 * `request_timeout`, or shutting down.
 *
 * Authentication (optional, secrets from the environment): `bearer_token` compares the
 * Authorization header in constant time; `hmac_secret` checks an HMAC-SHA256 of the raw body,
 * hex, in `hmac_header` (GitHub's `X-Hub-Signature-256: sha256=…` form by default).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Type } from '@sinclair/typebox';
import {
  decodeJson,
  excerpt,
  type InputLimits,
  inputLimits,
  LimitOptions,
  textTooLarge,
  tooLargeReason,
} from '../../runtime/limits.ts';
import type { RecordInit } from '../../runtime/record.ts';
import { Duration, EnvSecret, Size } from '../../spec/types.ts';
import { defineSource, type Source, type SourceContext, type StageContext } from '../define.ts';
import { HttpError, HttpIntake, header, send } from './http-intake.ts';

const options = Type.Object({
  listen: Type.Object(
    {
      address: Type.Optional(
        Type.String({ default: '127.0.0.1', description: 'Address to bind', examples: ['0.0.0.0'] }),
      ),
      port: Type.Integer({ minimum: 0, maximum: 65535, description: 'Port to bind', examples: [8080] }),
      path: Type.Optional(
        Type.String({
          default: '/',
          pattern: '^/',
          description: 'Path clients post to',
          examples: ['/ingest'],
        }),
      ),
    },
    { additionalProperties: false, description: 'Where the endpoint listens' },
  ),
  codec: Type.Optional(
    Type.Union([Type.Literal('ndjson'), Type.Literal('json'), Type.Literal('text')], {
      default: 'ndjson',
      description:
        'ndjson: one JSON record per non-empty line; json: the body is one JSON value, an array gives one record per element; text: one string record per non-empty line',
    }),
  ),
  bearer_token: Type.Optional(
    EnvSecret({
      description:
        'When set, requests need `Authorization: Bearer <token>` (401 otherwise); from the environment: ${INGEST_TOKEN}',
      examples: ['${INGEST_TOKEN}'],
    }),
  ),
  hmac_secret: Type.Optional(
    EnvSecret({
      description:
        'When set, requests need the hex HMAC-SHA256 of the raw body under this secret in `hmac_header` (401 otherwise); from the environment: ${INGEST_HMAC_SECRET}',
      examples: ['${INGEST_HMAC_SECRET}'],
    }),
  ),
  hmac_header: Type.Optional(
    Type.String({
      minLength: 1,
      default: 'X-Hub-Signature-256',
      description: 'Header holding the signature, as `sha256=<hex>` or bare hex',
      examples: ['X-Signature'],
    }),
  ),
  max_body: Type.Optional(
    Size({ default: '1MiB', description: 'Largest request body accepted (413 above)' }),
  ),
  ...LimitOptions,
  max_concurrent: Type.Optional(
    Type.Integer({
      minimum: 1,
      default: 64,
      description:
        'Open requests at once, those waiting for their acks included; more get 503 with Retry-After',
    }),
  ),
  request_timeout: Type.Optional(
    Duration({
      default: '30s',
      description:
        'Longest a request may take, body and ack wait included (408 for a slow body, 503 for slow acks)',
    }),
  ),
  accept_timeout: Type.Optional(
    Duration({
      default: '1s',
      description:
        'How long a request’s records may wait for room in a full pipeline before it gets 503 (backpressure)',
    }),
  ),
});

type Options = typeof options.static;

export const httpServerSource = defineSource({
  type: 'http_server',
  kind: 'source',
  description:
    'Receives records in HTTP POST bodies (ndjson, JSON or text lines) and answers 200 only once they are durable; 503 with Retry-After when full.',
  options,
  meta: [
    { name: 'path', type: 'string', description: 'The request path (without the query)' },
    { name: 'remote_address', type: 'string', description: 'The client’s IP address' },
    { name: 'content_type', type: 'string', description: 'The request’s Content-Type, or empty' },
  ],
  example: `
version: 1
name: http-server-example
sources:
  ingest:
    type: http_server
    listen: { port: 8080, path: /ingest }
    codec: ndjson
    bearer_token: \${INGEST_TOKEN:-change-me}
sinks:
  print: { type: stdout, from: [ingest] }
  rejected: { type: file, from: [ingest.errors], dir: ./errors, path: 'ingest_{first_position}{ext}' }
`,
  check(o, report) {
    const local = (o.listen.address ?? '127.0.0.1').startsWith('127.') || o.listen.address === '::1';
    if (!o.bearer_token && !o.hmac_secret && !local) {
      report(
        ['listen', 'address'],
        'insecure-setting',
        'no bearer_token or hmac_secret: anyone who can reach this port can inject records',
        'warning',
      );
    }
  },
  create: (o, ctx) => new HttpServerSource(o, ctx),
  decode(o, raw) {
    const limits = inputLimits(o);
    const records: RecordInit[] = [];
    const failed: { input: RecordInit; reason: string }[] = [];
    for (const r of raw) {
      const out = bodyRecords(Buffer.from(r.data), o.codec ?? 'ndjson', limits, {
        path: o.listen.path ?? '/',
        ...r.meta,
      });
      if ('error' in out)
        failed.push({ input: { value: Buffer.from(r.data).toString('utf8') }, reason: out.error });
      else {
        records.push(...out.records);
        failed.push(...out.failed);
      }
    }
    return { records, failed };
  },
});

export class HttpServerSource implements Source {
  private readonly o: Options;
  private readonly ctx: StageContext;
  private readonly path: string;
  private readonly limits: InputLimits;
  private readonly token: Buffer | undefined;
  private readonly intake: HttpIntake<object>;

  constructor(o: Options, ctx: StageContext) {
    this.o = o;
    this.ctx = ctx;
    this.path = o.listen.path ?? '/';
    this.limits = inputLimits(o);
    this.token = o.bearer_token ? Buffer.from(`Bearer ${o.bearer_token}`) : undefined;
    this.intake = new HttpIntake<object>(
      {
        name: 'http_server',
        listeningMessage: 'http_server listening',
        listen: o.listen,
        path: this.path,
        maxBody: o.max_body ?? 1024 * 1024,
        maxConcurrent: o.max_concurrent ?? 64,
        requestTimeout: o.request_timeout ?? 30_000,
        acceptTimeout: o.accept_timeout ?? 1_000,
        stoppingIsBusy: false,
        reply,
        error: (message) => ({ error: message }),
        serve: (req, res, sc, path) => this.serve(req, res, sc, path),
        refused: (req, res, err) => this.refused(req, res, err),
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
    await this.intake.serveUntilStopped(sc);
  }

  close(): Promise<void> {
    return this.intake.close();
  }

  private async serve(
    req: IncomingMessage,
    res: ServerResponse,
    sc: SourceContext,
    path: string,
  ): Promise<void> {
    this.authorizeToken(req);
    const body = await this.intake.readBody(req);
    this.authorizeSignature(req, body);
    const meta = {
      path,
      remote_address: req.socket.remoteAddress ?? '',
      content_type: header(req, 'content-type') ?? '',
    };
    const out = bodyRecords(body, this.o.codec ?? 'ndjson', this.limits, meta);
    if ('error' in out) throw new HttpError(400, out.error);
    await this.deliver(out.records, out.failed, res, sc);
  }

  private refused(req: IncomingMessage, res: ServerResponse, err: HttpError): void {
    this.ctx.metrics.count(err.status === 401 ? 'unauthorized' : 'bad_requests');
    this.ctx.log.warn(
      { status: err.status, reason: err.message, remote: req.socket.remoteAddress },
      'http_server request refused',
    );
    if (err.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
  }

  private authorizeToken(req: IncomingMessage): void {
    if (!this.token) return;
    const given = Buffer.from(header(req, 'authorization') ?? '');
    if (given.length !== this.token.length || !timingSafeEqual(given, this.token)) {
      throw new HttpError(401, 'missing or wrong bearer token');
    }
  }

  private authorizeSignature(req: IncomingMessage, body: Buffer): void {
    if (!this.o.hmac_secret) return;
    const name = (this.o.hmac_header ?? 'X-Hub-Signature-256').toLowerCase();
    const given = (header(req, name) ?? '')
      .trim()
      .replace(/^sha256=/i, '')
      .toLowerCase();
    const expected = createHmac('sha256', this.o.hmac_secret).update(body).digest('hex');
    const a = Buffer.from(given);
    const b = Buffer.from(expected);
    if (a.length !== b.length || !timingSafeEqual(a, b))
      throw new HttpError(401, `missing or wrong signature in ${name}`);
  }

  /** Hands the records on; 200 once every one is acked (delivered or in the error output). */
  private async deliver(
    records: RecordInit[],
    failed: { input: RecordInit; reason: string }[],
    res: ServerResponse,
    sc: SourceContext,
  ): Promise<void> {
    let waiting = (records.length > 0 ? 1 : 0) + failed.length;
    if (waiting === 0) return reply(res, 200, { accepted: 0, failed: 0 });
    await this.intake.deliver(res, async (answer) => {
      let ackError: Error | undefined;
      const onAck = (err?: Error) => {
        ackError ??= err;
        if (--waiting > 0) return;
        if (ackError) {
          this.ctx.log.warn(
            { err: ackError },
            'http_server records not durable; the client should send again',
          );
          answer(500, { error: 'not durable' });
        } else answer(200, { accepted: records.length, failed: failed.length });
      };
      if (records.length > 0) await sc.emit(records, onAck);
      for (const f of failed) await sc.fail(f.input, f.reason, onAck);
    });
  }
}

type BodyRecords =
  | { records: RecordInit[]; failed: { input: RecordInit; reason: string }[] }
  | { error: string };

/** The records of one body under the input limits; a body that is not JSON at all (codec json) is an error. */
function bodyRecords(
  body: Buffer,
  codec: 'ndjson' | 'json' | 'text',
  limits: InputLimits,
  meta: Record<string, unknown>,
): BodyRecords {
  const text = body.toString('utf8');
  const records: RecordInit[] = [];
  const failed: { input: RecordInit; reason: string }[] = [];
  if (codec === 'json') {
    const d = decodeJson(text, { ...limits, maxRecordBytes: Number.MAX_SAFE_INTEGER }, body.length);
    if (!d.ok)
      return d.kind === 'malformed' ? { error: `body is not JSON: ${d.detail}` } : { error: d.reason };
    const values = Array.isArray(d.value) ? d.value : [d.value];
    for (const [i, value] of values.entries()) {
      const size = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
      if (size > limits.maxRecordBytes)
        failed.push({
          input: { value: '(too large)', meta },
          reason: `element ${i}: ${tooLargeReason(size, limits.maxRecordBytes)}`,
        });
      else records.push({ value, meta, size });
    }
    return { records, failed };
  }
  let line = 0;
  for (const raw of text.split('\n')) {
    line++;
    const l = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (l.trim() === '') continue;
    if (codec === 'text') {
      const size = textTooLarge(l, limits.maxRecordBytes);
      if (size !== undefined)
        failed.push({
          input: { value: excerpt(l), meta },
          reason: `line ${line}: ${tooLargeReason(size, limits.maxRecordBytes)}`,
        });
      else records.push({ value: l, meta, size: Buffer.byteLength(l) });
      continue;
    }
    const d = decodeJson(l, limits);
    if (d.ok) records.push({ value: d.value, meta, size: Buffer.byteLength(l) });
    else failed.push({ input: { value: excerpt(l), meta }, reason: `line ${line}: ${d.reason}` });
  }
  return { records, failed };
}

function reply(res: ServerResponse, status: number, body: object, retryAfter?: number): void {
  send(res, status, 'application/json', JSON.stringify(body), retryAfter);
}
