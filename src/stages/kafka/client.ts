/**
 * What the Kafka source and sink share: the broker option, client ids, base client options
 * for `@platformatic/kafka` (a maintained pure-JS client: no native download, Node 22+) and
 * one-line error messages.
 *
 * Nothing here loads the client: it is most of the stage registry's import time, so only
 * `runtime.ts` imports its values, and the stages import that when they start.
 */
import { Type } from '@sinclair/typebox';
import type { StageContext } from '../define.ts';

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
 * One line from a client error, including the nested causes `MultipleErrors` hides (it is an
 * `AggregateError`).
 */
export function kafkaErrorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const parts: string[] = [];
  const seen = new Set<string>();
  const visit = (e: Error, depth: number): void => {
    if (depth > 4) return;
    const inner: unknown[] = e instanceof AggregateError ? e.errors : [];
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

/** How long a stage waits at start for the brokers to answer its check. */
export const STARTUP_CHECK_MS = 15_000;

/**
 * Resolves or rejects like `work`, or rejects with `timeout()` after `ms`: bounds a start-up
 * check whatever the client's own connect timeouts and retries add up to.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
