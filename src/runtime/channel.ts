/**
 * A bounded channel of batches between stages. A full channel makes `push` wait, so a slow
 * sink stops its transforms and, in the end, its sources: memory stays bounded.
 */
import type { SluiceRecord } from './record.ts';

export type Batch = SluiceRecord[];

export class Channel {
  readonly capacity: number;
  private readonly queue: Batch[] = [];
  private head = 0;
  private writers: number;
  private readonly waitingWriters: (() => void)[] = [];
  private waitingReader: (() => void) | undefined;

  constructor(capacity: number, writers: number) {
    this.capacity = capacity;
    this.writers = writers;
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  get fill(): number {
    return this.length / this.capacity;
  }

  async push(batch: Batch): Promise<void> {
    while (this.length >= this.capacity)
      await new Promise<void>((resolve) => this.waitingWriters.push(resolve));
    this.queue.push(batch);
    this.wakeReader();
  }

  /** The next batch, or undefined once every writer closed and the queue is empty. */
  async pull(): Promise<Batch | undefined> {
    while (this.length === 0) {
      if (this.writers <= 0) return undefined;
      await new Promise<void>((resolve) => {
        this.waitingReader = resolve;
      });
    }
    const batch = this.queue[this.head];
    this.queue[this.head++] = undefined as unknown as Batch;
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.waitingWriters.shift()?.();
    return batch;
  }

  /** One writer is done; the reader sees the end once all are. */
  closeWriter(): void {
    this.writers--;
    this.wakeReader();
  }

  private wakeReader(): void {
    const r = this.waitingReader;
    this.waitingReader = undefined;
    r?.();
  }
}
