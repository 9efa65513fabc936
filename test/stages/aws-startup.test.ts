import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { type S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import { type CheckTarget, checkTarget } from '../../src/stages/aws/startup.ts';
import type { StageContext } from '../../src/stages/define.ts';
import { KinesisSink } from '../../src/stages/sinks/kinesis.ts';
import { S3Sink } from '../../src/stages/sinks/s3.ts';

/**
 * What the start-up checks say for answers moto does not give: it enforces no IAM policy,
 * never redirects to another region, and creates streams ACTIVE at once.
 */

const target: CheckTarget = {
  service: 's3',
  what: "bucket 'lake'",
  region: 'sa-east-1',
  endpoint: undefined,
  actions: 's3:ListBucket and s3:PutObject',
};

const ctx = (type: string): StageContext => ({
  name: 'out',
  pipeline: 't',
  log: pino({ level: 'silent' }),
  metrics: new MetricsRegistry('t').stage('out', 'sink', type),
  stateDir: '.',
});

function s3Error(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
  });
}

/** An S3 sink whose HeadBucket gets `answer`. */
function s3SinkAnswering(answer: () => Promise<unknown>): S3Sink {
  const client = { send: answer, destroy: () => undefined } as unknown as S3Client;
  return new S3Sink(client, { bucket: 'lake', key: 'k{ext}', region: 'sa-east-1' }, ctx('s3'));
}

describe('start-up check messages', () => {
  it('s3: 403 says access is denied with the default chain and which actions to grant', async () => {
    const sink = s3SinkAnswering(() => Promise.reject(s3Error('Forbidden', 403)));
    await expect(sink.open()).rejects.toThrow(
      /^s3: access denied to bucket 'lake' with the credentials from the default chain \(Forbidden.*\); grant s3:ListBucket and s3:PutObject on it/,
    );
  });

  it('s3: 301 says the bucket is in another region', async () => {
    const sink = s3SinkAnswering(() => Promise.reject(s3Error('PermanentRedirect', 301)));
    await expect(sink.open()).rejects.toThrow("s3: bucket 'lake' is not in region sa-east-1; set `region`");
  });

  it('says when there are no credentials, and where they are looked for', async () => {
    const missing = Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
    });
    await expect(checkTarget(target, () => Promise.reject(missing))).rejects.toThrow(
      /^s3: no AWS credentials to check bucket 'lake' .*AWS_ACCESS_KEY_ID/,
    );
  });

  it('says when the credentials are refused', async () => {
    await expect(
      checkTarget(target, () => Promise.reject(s3Error('InvalidAccessKeyId', 403))),
    ).rejects.toThrow(
      /^s3: the credentials from the default chain were refused while checking bucket 'lake'/,
    );
  });

  it('gives up at its deadline and aborts the call', async () => {
    let aborted = false;
    const started = Date.now();
    await expect(
      checkTarget(
        target,
        (signal) =>
          new Promise((_, reject) => {
            signal.addEventListener('abort', () => {
              aborted = true;
              reject(new Error('aborted'));
            });
          }),
        200,
      ),
    ).rejects.toThrow(
      "s3: no answer from the AWS s3 endpoint of region sa-east-1 within 0.2s while checking bucket 'lake'",
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(aborted).toBe(true);
  });

  it('kinesis: a stream being deleted is not ACTIVE', async () => {
    const sink = new KinesisSink(
      { stream: 'flow1', partition_key: 'id', region: 'sa-east-1' },
      ctx('kinesis'),
    );
    (sink as unknown as { client: KinesisClient }).client = {
      send: async () => ({ StreamDescriptionSummary: { StreamStatus: 'DELETING' } }),
      destroy: () => undefined,
    } as unknown as KinesisClient;
    await expect(sink.open()).rejects.toThrow(
      "kinesis: stream 'flow1' in region sa-east-1 is DELETING, not ACTIVE",
    );
  });
});
