/**
 * End-to-end acknowledgement: one group per source batch. Every copy of a record (fan-out,
 * error routes) holds the group; the source's callback runs once all copies are settled,
 * with the first failure if any copy failed (the source then must not checkpoint past it).
 */
export type AckCallback = (error?: Error) => void;

export class AckGroup {
  private pending: number;
  private failure: Error | undefined;
  private readonly onSettle: AckCallback | undefined;
  private failureListeners: (() => void)[] | undefined;
  private successListeners: (() => void)[] | undefined;

  constructor(count: number, onSettle?: AckCallback) {
    this.pending = count;
    this.onSettle = onSettle;
    if (count === 0) queueMicrotask(() => this.settle());
  }

  /** Another copy of a record now travels (fan-out to `n` more consumers). */
  add(n: number): void {
    this.pending += n;
  }

  /** `n` copies are durable, dropped on purpose, or handled by an error output. */
  resolve(n = 1): void {
    this.pending -= n;
    if (this.pending === 0) this.settle();
  }

  /** A copy could not be delivered: the batch settles as failed. */
  reject(error: Error, n = 1): void {
    this.failure ??= error;
    this.resolve(n);
  }

  /** Runs `fn` if the group settles as failed (dedup forgets keys whose records never became durable). */
  onFailure(fn: () => void): void {
    if (!this.failureListeners) this.failureListeners = [];
    this.failureListeners.push(fn);
  }

  /** Runs `fn` if the group settles with every copy delivered (dedup stores make their keys durable). */
  onSuccess(fn: () => void): void {
    if (!this.successListeners) this.successListeners = [];
    this.successListeners.push(fn);
  }

  get settled(): boolean {
    return this.pending <= 0;
  }

  private settle(): void {
    if (this.failure && this.failureListeners) for (const fn of this.failureListeners) fn();
    if (!this.failure && this.successListeners) for (const fn of this.successListeners) fn();
    this.onSettle?.(this.failure);
  }
}

/**
 * Positions of one partition (shard, Kafka partition, file) in the order they were read.
 * `committable` is the highest position below which everything is acked: the only one a
 * checkpoint may store.
 */
export class ContiguousTracker<P> {
  private readonly positions: P[] = [];
  private readonly done: boolean[] = [];
  private head = 0;
  private base = 0;
  private last: P | undefined;

  constructor(committed?: P) {
    this.last = committed;
  }

  /** Registers the next position; returns a ticket to pass to `ack`. */
  track(position: P): number {
    this.positions.push(position);
    this.done.push(false);
    return this.base + this.positions.length - 1;
  }

  /** Marks a ticket acked; returns true when the committable position moved. */
  ack(ticket: number): boolean {
    this.done[ticket - this.base] = true;
    let moved = false;
    while (this.head < this.done.length && this.done[this.head]) {
      this.last = this.positions[this.head];
      this.head++;
      moved = true;
    }
    if (this.head > 1024 && this.head * 2 > this.done.length) this.compact();
    return moved;
  }

  get committable(): P | undefined {
    return this.last;
  }

  get inFlight(): number {
    return this.done.length - this.head;
  }

  private compact(): void {
    this.positions.splice(0, this.head);
    this.done.splice(0, this.head);
    this.base += this.head;
    this.head = 0;
  }
}
