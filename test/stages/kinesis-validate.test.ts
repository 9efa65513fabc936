import { describe, expect, it } from 'vitest';
import { validateText } from '../../src/spec/validate.ts';

const spec = (source: string, sinks: string) => `version: 1
name: v
sources:
  flow: ${source}
sinks:
${sinks}
`;

const codes = (text: string) =>
  validateText('v.yaml', text, {}).diagnostics.map((d) => [d.code, d.message] as const);

describe('kinesis and firehose static checks', () => {
  it('rejects a poll interval over the GetRecords rate and at_timestamp without a timestamp', () => {
    const found = codes(
      spec(
        '{ type: kinesis, stream: s, start: at_timestamp, poll_interval: 100ms }',
        '  out: { type: stdout, from: [flow] }',
      ),
    );
    expect(found).toContainEqual(['aws-limit', expect.stringMatching(/5 calls per second/)]);
    expect(found).toContainEqual(['schema-value', expect.stringMatching(/needs start_timestamp/)]);
    expect(
      codes(
        spec(
          '{ type: kinesis, stream: s, start: at_timestamp, start_timestamp: "2026-01-01T00:00:00Z" }',
          '  out: { type: stdout, from: [flow] }',
        ),
      ),
    ).toEqual([]);
  });

  it('holds sink buffers to the PutRecords and PutRecordBatch limits', () => {
    const found = codes(
      spec(
        '{ type: kinesis, stream: s }',
        `  k: { type: kinesis, from: [flow], stream: t, partition_key: 'x', buffer: { max_records: 501, max_bytes: 6MiB } }
  f: { type: firehose, from: [flow], delivery_stream: d, buffer: { max_bytes: 5MiB } }`,
      ),
    );
    expect(found.map(([c, m]) => `${c}: ${m}`)).toEqual([
      expect.stringMatching(/^aws-limit: kinesis accepts at most 500 records/),
      expect.stringMatching(/^aws-limit: kinesis accepts at most 5.0 MiB/),
      expect.stringMatching(/^aws-limit: firehose accepts at most 4.0 MiB/),
    ]);
  });

  it('checks the DynamoDB checkpoint options and the partition key expression', () => {
    expect(
      codes(
        spec(
          '{ type: kinesis, stream: s, checkpoint: { dynamodb: { table: leases, lease_duration: 20s } } }',
          "  k: { type: kinesis, from: [flow], stream: t, partition_key: 'meta.partition_key', ordered: true }",
        ),
      ),
    ).toEqual([]);
    expect(
      codes(
        spec(
          '{ type: kinesis, stream: s, checkpoint: { dynamodb: {} } }',
          '  out: { type: stdout, from: [flow] }',
        ),
      ).length,
    ).toBeGreaterThan(0);
    expect(
      codes(
        spec(
          '{ type: kinesis, stream: s }',
          "  k: { type: kinesis, from: [flow], stream: t, partition_key: 'a +' }",
        ),
      ).length,
    ).toBeGreaterThan(0);
  });
});
