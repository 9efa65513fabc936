/**
 * Where time and randomness come from for `now()`, `uuid_v4()`, the `{uuid}` and `{batch_start}`
 * templates and the engine's timestamps. Normally the system clock and crypto; `sluice test`
 * fixes both for one case so its outputs are the same on every run.
 */
import { randomUUID } from 'node:crypto';

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  uuid(): string;
  /** True when time does not pass (a fixed clock): buffers then flush on size and at the end only. */
  readonly fixed: boolean;
}

const systemClock: Clock = { now: () => Date.now(), uuid: () => randomUUID(), fixed: false };

let current: Clock = systemClock;

export function clock(): Clock {
  return current;
}

/** Fixes time at `at` (epoch ms) and derives UUIDs from `seed`, until `restoreSystemClock()`. */
export function fixClock(at: number, seed: number): void {
  let n = 0;
  current = { now: () => at, uuid: () => seededUuid(seed, n++), fixed: true };
}

export function restoreSystemClock(): void {
  current = systemClock;
}

/** A version 4 UUID whose 122 random bits come from a hash of (seed, n). */
function seededUuid(seed: number, n: number): string {
  const bytes = new Uint8Array(16);
  for (let word = 0; word < 4; word++) {
    const h = mix(seed, n * 4 + word);
    bytes[word * 4] = h >>> 24;
    bytes[word * 4 + 1] = (h >>> 16) & 0xff;
    bytes[word * 4 + 2] = (h >>> 8) & 0xff;
    bytes[word * 4 + 3] = h & 0xff;
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function mix(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}
