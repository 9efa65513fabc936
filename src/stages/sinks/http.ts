/**
 * `http` sink: POSTs (or PUTs) each batch to a URL, as newline-delimited JSON or one JSON array.
 *
 * Status codes decide what a failure is:
 * - 2xx: the batch is delivered.
 * - 408, 429 and 5xx: transient; the runtime retries the batch with backoff. A Retry-After
 *   (seconds or an HTTP date) is honoured here: the stage contract carries no delay back to the
 *   runtime, so the next write waits until that time (at most `max_retry_after`) before it sends.
 * - any other 4xx: the batch is refused as a whole and permanently; the runtime splits it until
 *   the records the endpoint refuses are alone, and those go to the error output with the status
 *   and the start of the response body.
 * - 3xx (redirects are not followed, so credentials never go to another host) and network
 *   failures (refused, reset, DNS, `timeout`): retried like transient ones, so an operator can fix
 *   the URL or the endpoint while the sink waits.
 * A record JSON cannot encode fails alone before anything is sent.
 */
import { Type } from '@sinclair/typebox';
import { type CompiledExpr, compile } from '../../expr/index.ts';
import { Duration, EnvSecret, Expr } from '../../spec/types.ts';
import {
  defineSink,
  type RecordFailure,
  type Sink,
  type SinkBatch,
  StageError,
  type WriteResult,
} from '../define.ts';

const options = Type.Object({
  url: Type.String({
    minLength: 1,
    pattern: '^https?://',
    description: 'Endpoint the batches go to (http or https)',
    examples: ['https://collector.example.com/v1/consumo'],
  }),
  method: Type.Optional(
    Type.Union([Type.Literal('POST'), Type.Literal('PUT')], {
      default: 'POST',
      description: 'HTTP method of each write',
    }),
  ),
  format: Type.Optional(
    Type.Union([Type.Literal('ndjson'), Type.Literal('json')], {
      default: 'ndjson',
      description:
        'ndjson: one JSON line per record (application/x-ndjson); json: the batch as one JSON array (application/json)',
    }),
  ),
  headers: Type.Optional(
    Type.Record(
      Type.String({ minLength: 1, pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" }),
      Expr({ description: 'CEL expression for a header value' }),
      {
        description:
          'Request headers, name → CEL expression evaluated on the first record of each batch (a string literal in quotes for a fixed value); a header that evaluates to null is left out',
        examples: [{ 'X-Source': '"sluice"', 'X-Fazenda': 'fazenda' }],
      },
    ),
  ),
  bearer_token: Type.Optional(
    EnvSecret({
      description: 'Token sent as `Authorization: Bearer …`, from the environment: ${HTTP_TOKEN}',
      examples: ['${HTTP_TOKEN}'],
    }),
  ),
  timeout: Type.Optional(
    Duration({
      default: '30s',
      description: 'Longest a request may take, answer included; past it the batch is retried',
    }),
  ),
  max_retry_after: Type.Optional(
    Duration({
      default: '5m',
      description: 'Longest Retry-After honoured; a longer one waits this long before the next attempt',
    }),
  ),
  startup_check: Type.Optional(
    Type.Union([Type.Literal('none'), Type.Literal('head'), Type.Literal('options')], {
      default: 'none',
      description:
        'Request made at start to check the endpoint answers (any status below 500 passes; an unreachable endpoint fails the start). none: endpoints that allow only POST/PUT',
    }),
  ),
});

type Options = typeof options.static;

export const httpSink = defineSink({
  type: 'http',
  kind: 'sink',
  description:
    'Sends batches of records to an HTTP endpoint (POST or PUT, ndjson or a JSON array), retrying 429 and 5xx with their Retry-After; records the endpoint refuses with a 4xx go to the error output.',
  transient:
    'Transient (the batch is retried, nothing goes to the error output): 408, 429 and 5xx answers ' +
    '(a Retry-After delays the next attempt, up to `max_retry_after`), redirects (not followed), ' +
    'connection refused or reset, DNS failures and `timeout`. Permanent for the records alone: ' +
    'a record JSON cannot encode, and any other 4xx: the batch is split until the refused ' +
    'records are alone, and those go to the error output with the status and the body’s start.',
  example: `
version: 1
name: http-example
sources:
  consumption:
    type: generate
    count: 100
    fields:
      id_lote: 'string(i % 10)'
      consumo_real: 'rand * 10.0'
sinks:
  collector:
    type: http
    from: [consumption]
    url: http://127.0.0.1:8081/ingest
    format: json
    headers:
      X-Source: '"sluice"'
  refused: { type: file, from: [collector.errors], dir: ./errors, path: 'collector_{first_position}{ext}' }
`,
  options,
  batching: { defaults: { max_records: 500, max_bytes: 1024 * 1024, max_age: 1000 } },
  create: (o) => new HttpSink(o),
  // Each record as the body carries it; headers are not captured.
  preview: (_o, ctx) => ({
    async write(batch) {
      const failed: RecordFailure[] = [];
      for (const [index, r] of batch.records.entries()) {
        const text = encodeRecord(r.value);
        if (text === undefined)
          failed.push({ index, reason: 'http: record cannot be encoded as JSON', retryable: false });
        else ctx.capture({ kind: 'record', value: JSON.parse(text) });
      }
      return failed.length > 0 ? { failed } : undefined;
    },
  }),
});

function encodeRecord(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/** How much of a refused answer's body goes into the reason. */
const BODY_EXCERPT = 512;

export class HttpSink implements Sink {
  private readonly o: Options;
  private readonly headers: [string, CompiledExpr][];
  private readonly timeout: number;
  private readonly maxRetryAfter: number;
  /** Epoch ms before which no request is sent (the last Retry-After). */
  private notBefore = 0;

  constructor(o: Options) {
    this.o = o;
    this.headers = Object.entries(o.headers ?? {}).map(([k, v]) => [k, compile(v)]);
    this.timeout = o.timeout ?? 30_000;
    this.maxRetryAfter = o.max_retry_after ?? 300_000;
  }

  async open(): Promise<void> {
    const method = this.o.startup_check ?? 'none';
    if (method === 'none') return;
    let status: number;
    try {
      const res = await fetch(this.o.url, {
        method: method.toUpperCase(),
        headers: this.auth(),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.timeout),
      });
      await res.body?.cancel();
      status = res.status;
    } catch (err) {
      throw new Error(`http: ${this.origin()} does not answer: ${networkReason(err)}`);
    }
    if (status >= 500)
      throw new Error(`http: ${this.origin()} answered ${method.toUpperCase()} with ${status}`);
  }

  async write(batch: SinkBatch): Promise<WriteResult> {
    const { body, failed, sent } = this.encode(batch);
    if (sent === 0) return { failed };
    const wait = this.notBefore - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const headers = this.headersFor(batch);
    let res: Response;
    try {
      res = await fetch(this.o.url, {
        method: this.o.method ?? 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.timeout),
      });
    } catch (err) {
      throw new StageError(`http: ${this.origin()}: ${networkReason(err)}`, { retryable: true, cause: err });
    }
    const status = res.status;
    if (status >= 200 && status < 300) {
      await res.body?.cancel();
      return failed.length > 0 ? { failed } : undefined;
    }
    const text = await excerpt(res);
    if (status === 408 || status === 429 || status >= 500) {
      const delay = retryAfterMs(res.headers.get('retry-after'));
      if (delay !== undefined) this.notBefore = Date.now() + Math.min(delay, this.maxRetryAfter);
      const after = delay !== undefined ? ` (Retry-After ${Math.round(delay / 1000)}s)` : '';
      throw new StageError(`http: ${this.origin()} answered ${status}${after}: ${text}`, { retryable: true });
    }
    if (status >= 300 && status < 400) {
      throw new StageError(
        `http: ${this.origin()} redirects (${status}) to ${res.headers.get('location') ?? 'nowhere'}: set url to the final address`,
        { retryable: true },
      );
    }
    // The endpoint refused what it was sent: the runtime splits the batch to find which records.
    throw new StageError(`http: ${this.origin()} answered ${status}: ${text}`, { retryable: false });
  }

  /** The batch's body; records JSON cannot encode fail alone. */
  private encode(batch: SinkBatch): { body: string; failed: RecordFailure[]; sent: number } {
    const parts: string[] = [];
    const failed: RecordFailure[] = [];
    for (let i = 0; i < batch.records.length; i++) {
      try {
        const text = JSON.stringify(batch.records[i].value);
        if (text === undefined) throw new Error('the value has no JSON form');
        parts.push(text);
      } catch (err) {
        failed.push({
          index: i,
          reason: `http: record cannot be encoded as JSON: ${(err as Error).message}`,
          retryable: false,
        });
      }
    }
    const body =
      this.o.format === 'json' ? `[${parts.join(',')}]` : parts.length > 0 ? `${parts.join('\n')}\n` : '';
    return { body, failed, sent: parts.length };
  }

  private headersFor(batch: SinkBatch): Record<string, string> {
    const headers: Record<string, string> = {
      'content-type': this.o.format === 'json' ? 'application/json' : 'application/x-ndjson',
      ...this.auth(),
    };
    const first = batch.records[0];
    for (const [name, expr] of this.headers) {
      let v: unknown;
      try {
        v = expr.evaluate(first.value, first.meta);
      } catch (err) {
        // A header belongs to the whole batch: split it until the record it fails on is alone.
        throw new StageError(`http: header ${name}: ${(err as Error).message}`, { retryable: false });
      }
      if (v !== null && v !== undefined) headers[name] = String(v);
    }
    return headers;
  }

  private auth(): Record<string, string> {
    return this.o.bearer_token ? { authorization: `Bearer ${this.o.bearer_token}` } : {};
  }

  /** scheme://host:port of the URL, for messages (its path and query may hold tokens). */
  private origin(): string {
    try {
      return new URL(this.o.url).origin;
    } catch {
      return 'the URL';
    }
  }
}

/** Milliseconds a Retry-After asks for (delta seconds or an HTTP date), or undefined. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

async function excerpt(res: Response): Promise<string> {
  try {
    const text = (await res.text()).trim();
    return text.length > BODY_EXCERPT ? `${text.slice(0, BODY_EXCERPT)}…` : text || res.statusText;
  } catch {
    return res.statusText;
  }
}

function networkReason(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'no answer in time (timeout)';
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}
