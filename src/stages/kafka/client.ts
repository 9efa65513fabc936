/**
 * What the Kafka source and sink share: the broker option, client ids, base client options
 * for `@platformatic/kafka` (a maintained pure-JS client: no native download, Node 22+), a
 * consumer that knows when a fetch is in flight, and one-line error messages.
 */
import {
  type CallbackWithPromise,
  Consumer,
  type ConsumerOptions,
  type FetchOptions,
  MultipleErrors,
} from '@platformatic/kafka';
import { Type } from '@sinclair/typebox';
import type { StageContext } from '../define.ts';

/** The client does not export its fetch response type by a stable name. */
type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>;

export const BrokersOption = Type.Union(
  [Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })],
  {
    description: 'Bootstrap brokers, host:port, comma-separated or a list',
    examples: ['127.0.0.1:9092', ['broker-1:9092', 'broker-2:9092']],
  },
);

export function parseBrokers(brokers: string | readonly string[]): string[] {
  const list = typeof brokers === 'string' ? brokers.split(',') : brokers.flatMap((b) => b.split(','));
  const out = list.map((b) => b.trim()).filter((b) => b.length > 0);
  if (out.length === 0) throw new Error('no Kafka brokers given');
  return out;
}

export function clientIdFor(ctx: Pick<StageContext, 'pipeline' | 'name'>, explicit?: string): string {
  if (explicit) return explicit;
  return `sluice-${ctx.pipeline}-${ctx.name}`.replace(/[^A-Za-z0-9._-]/g, '_');
}

export interface BaseClientOptions {
  clientId: string;
  bootstrapBrokers: string[];
  connectTimeout: number;
  timeout: number;
  retries: number;
  retryDelay: number;
}

export function baseClientOptions(
  brokers: string | readonly string[],
  clientId: string,
  timeoutMs = 30_000,
): BaseClientOptions {
  return {
    clientId,
    bootstrapBrokers: parseBrokers(brokers),
    connectTimeout: 10_000,
    timeout: timeoutMs,
    // The runtime retries failed batches with backoff; the client's own retries only cover
    // leader moves and short broker restarts.
    retries: 5,
    retryDelay: 500,
  };
}

/**
 * A consumer that counts its fetch requests in flight. A rebalance waits for them to finish
 * so no fetch issued for the old assignment lands after the new one took effect (its records
 * would carry offsets the new generation did not ask for).
 */
export class FetchTrackingConsumer extends Consumer {
  private inflightFetches = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(options: ConsumerOptions<Buffer, Buffer, Buffer, Buffer>) {
    super(options);
  }

  override fetch(
    options: FetchOptions<Buffer, Buffer, Buffer, Buffer>,
    callback: CallbackWithPromise<FetchResponse>,
  ): void;
  override fetch(options: FetchOptions<Buffer, Buffer, Buffer, Buffer>): Promise<FetchResponse>;
  override fetch(
    options: FetchOptions<Buffer, Buffer, Buffer, Buffer>,
    callback?: CallbackWithPromise<FetchResponse>,
  ): undefined | Promise<FetchResponse> {
    this.inflightFetches++;
    const done = (): void => {
      this.inflightFetches--;
      if (this.inflightFetches === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    if (!callback) {
      return super.fetch(options).finally(done);
    }
    super.fetch(options, (error, response) => {
      try {
        callback(error, response as FetchResponse);
      } finally {
        done();
      }
    });
    return undefined;
  }

  get fetchesInFlight(): number {
    return this.inflightFetches;
  }

  /** Resolves once no fetch is in flight (at once when none is). */
  fetchesIdle(): Promise<void> {
    if (this.inflightFetches === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** One line from a client error, including the nested causes `MultipleErrors` hides. */
export function kafkaErrorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const parts: string[] = [];
  const seen = new Set<string>();
  const visit = (e: Error, depth: number): void => {
    if (depth > 4) return;
    const inner =
      e instanceof MultipleErrors || e instanceof AggregateError ? (e as AggregateError).errors : [];
    if (inner.length === 0 || !/failed|Multiple/i.test(e.message)) {
      if (!seen.has(e.message)) {
        seen.add(e.message);
        parts.push(e.message);
      }
    }
    for (const i of inner) if (i instanceof Error) visit(i, depth + 1);
    if (inner.length === 0 && e.cause instanceof Error) visit(e.cause, depth + 1);
  };
  visit(error, 0);
  return parts.length > 0 ? parts.join('; ') : error.message;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
