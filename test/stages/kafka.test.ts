import { MultipleErrors } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { clientIdFor, kafkaErrorMessage, parseBrokers } from '../../src/stages/kafka/client.ts';
import { kafkaSink } from '../../src/stages/sinks/kafka.ts';
import { kafkaSource } from '../../src/stages/sources/kafka.ts';

type Check = (
  opts: never,
  report: (path: readonly (string | number)[], code: string, message: string) => void,
) => void;

function reports(check: Check | undefined, opts: Record<string, unknown>): string[] {
  const out: string[] = [];
  check?.(opts as never, (path, _code, message) => out.push(`${path.join('.')}: ${message}`));
  return out;
}

describe('kafka client helpers', () => {
  it('accepts brokers as a comma list or an array', () => {
    expect(parseBrokers('a:9092, b:9092,')).toEqual(['a:9092', 'b:9092']);
    expect(parseBrokers(['a:1', 'b:2,c:3'])).toEqual(['a:1', 'b:2', 'c:3']);
    expect(() => parseBrokers(' , ')).toThrow(/no Kafka brokers/);
  });

  it('derives a client id from pipeline and stage names', () => {
    expect(clientIdFor({ pipeline: 'feedlot kafka', name: 'in' })).toBe('sluice-feedlot_kafka-in');
    expect(clientIdFor({ pipeline: 'p', name: 'in' }, 'mine')).toBe('mine');
  });

  it('flattens nested client errors into one line', () => {
    const inner = new Error('Unknown topic foo.');
    const err = new MultipleErrors('Producing messages failed.', [
      new MultipleErrors('produce failed 4 times.', [inner, inner]),
    ]);
    expect(kafkaErrorMessage(err)).toBe('Unknown topic foo.');
    expect(kafkaErrorMessage(new Error('plain'))).toBe('plain');
  });
});

describe('kafka stage checks', () => {
  it('source needs exactly one of topics and topic_pattern, and a valid pattern', () => {
    const check = kafkaSource.check as Check;
    expect(reports(check, { brokers: 'b', group: 'g' })).toEqual([': give `topics` or `topic_pattern`']);
    expect(reports(check, { brokers: 'b', group: 'g', topics: ['t'], topic_pattern: 'x' })).toHaveLength(1);
    expect(reports(check, { brokers: 'b', group: 'g', topic_pattern: '(' })[0]).toMatch(
      /^topic_pattern: not a regular expression/,
    );
    expect(reports(check, { brokers: 'b', group: 'g', topics: ['t'] })).toEqual([]);
  });

  it('sink needs exactly one of topic and topic_expr; idempotence needs acks all', () => {
    const check = kafkaSink.check as Check;
    expect(reports(check, { brokers: 'b' })).toEqual([': give `topic` or `topic_expr`']);
    expect(reports(check, { brokers: 'b', topic: 't', idempotent: true, acks: 'leader' })).toEqual([
      'idempotent: an idempotent producer needs acks: all',
    ]);
    expect(reports(check, { brokers: 'b', topic: 't', acks: 'leader' })).toEqual([]);
  });
});

describe('kafka sink batching', () => {
  it('keeps one batch in flight unless told records need no order', () => {
    const policy = kafkaSink.batching as (o: never) => { maxInFlight?: number };
    expect(policy({ brokers: 'b', topic: 't' } as never).maxInFlight).toBe(1);
    expect(policy({ brokers: 'b', topic: 't', ordered: false } as never).maxInFlight).toBeUndefined();
  });
});
