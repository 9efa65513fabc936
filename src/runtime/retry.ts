/** Exponential backoff with jitter, capped; interrupted by an abort signal. */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryPolicy {
  /** Attempts per record, the first included; absent: no limit. */
  max_attempts?: number;
  /** Longest a record is retried, ms, from its first failure; absent: no limit. */
  max_elapsed?: number;
  backoff: number;
  max_backoff: number;
}

export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.max_backoff, policy.backoff * 2 ** Math.min(attempt - 1, 30));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export async function waitBackoff(policy: RetryPolicy, attempt: number, signal?: AbortSignal): Promise<void> {
  await sleep(backoffDelay(policy, attempt), undefined, { signal }).catch(() => undefined);
}

/** Why retrying stops here, or undefined while it may go on (by default it always may). */
export function retryExhausted(
  policy: RetryPolicy,
  attempt: number,
  firstFailureAt: number,
): string | undefined {
  if (policy.max_attempts !== undefined && attempt >= policy.max_attempts)
    return `gave up after ${attempt} attempts (retry.max_attempts: ${policy.max_attempts})`;
  if (policy.max_elapsed !== undefined && Date.now() - firstFailureAt >= policy.max_elapsed)
    return `gave up after ${Math.round((Date.now() - firstFailureAt) / 1000)}s of retries (retry.max_elapsed)`;
  return undefined;
}
