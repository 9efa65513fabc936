import { MultipleErrors, NetworkError, ProtocolError, TimeoutError } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import {
  isTransientKafkaError,
  kafkaErrorIds,
  permanentKafkaError,
  topicNameProblem,
} from '../../src/stages/kafka/errors.ts';

/** What a failed produce looks like: the client wraps per-partition errors in MultipleErrors. */
const produceFailure = (...ids: string[]) =>
  new MultipleErrors(
    'Producing messages failed.',
    ids.map((id) => new ProtocolError(id)),
  );

describe('kafka error classification', () => {
  it('treats unavailable brokers and leaders, timeouts and network errors as transient', () => {
    for (const id of [
      'BROKER_NOT_AVAILABLE',
      'LEADER_NOT_AVAILABLE',
      'NOT_LEADER_OR_FOLLOWER',
      'REQUEST_TIMED_OUT',
      'NETWORK_EXCEPTION',
      'NOT_ENOUGH_REPLICAS',
      'UNKNOWN_TOPIC_OR_PARTITION',
      'TOPIC_AUTHORIZATION_FAILED',
    ]) {
      expect(isTransientKafkaError(produceFailure(id)), id).toBe(true);
    }
    expect(isTransientKafkaError(new NetworkError('Connection to 127.0.0.1:9092 failed.'))).toBe(true);
    expect(isTransientKafkaError(new TimeoutError('Request timed out'))).toBe(true);
  });

  it('treats refusals of a record as permanent, also when nested beside a transient error', () => {
    for (const id of ['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'INVALID_TIMESTAMP']) {
      expect(isTransientKafkaError(produceFailure(id)), id).toBe(false);
    }
    const mixed = produceFailure('LEADER_NOT_AVAILABLE', 'MESSAGE_TOO_LARGE');
    expect(kafkaErrorIds(mixed)).toEqual(['LEADER_NOT_AVAILABLE', 'MESSAGE_TOO_LARGE']);
    expect(permanentKafkaError(mixed)).toBe('MESSAGE_TOO_LARGE');
  });

  it('checks topic names from topic_expr the way the broker would', () => {
    expect(topicNameProblem('quotes.petr4')).toBeUndefined();
    expect(topicNameProblem('a b')).toMatch(/letters, digits/);
    expect(topicNameProblem('x'.repeat(250))).toMatch(/249/);
    expect(topicNameProblem('..')).toMatch(/not a valid/);
  });
});
