/**
 * The parts of the Kafka stages that need the client's values (classes, enums, the key hash).
 * The source and sink import this module when they start, so importing the stage registry
 * (e.g. for `sluice validate`) does not load the client.
 */
import {
  Admin,
  type CallbackWithPromise,
  Consumer,
  type ConsumerOptions,
  type FetchOptions,
  murmur2,
  ProduceAcks,
  Producer,
} from '@platformatic/kafka';

export { Admin, murmur2, Producer };

/** The client does not export its fetch response type by a stable name. */
type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>;

export const ACKS = {
  all: ProduceAcks.ALL,
  leader: ProduceAcks.LEADER,
  none: ProduceAcks.NO_RESPONSE,
} as const;

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
