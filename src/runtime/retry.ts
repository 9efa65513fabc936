/** Exponential backoff with full jitter, capped; interrupted by an abort signal. */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryPolicy {
  max_attempts: number;
  backoff: number;
  max_backoff: number;
}

export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.max_backoff, policy.backoff * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export async function waitBackoff(policy: RetryPolicy, attempt: number, signal?: AbortSignal): Promise<void> {
  await sleep(backoffDelay(policy, attempt), undefined, { signal }).catch(() => undefined);
}
