import {
  KinesisServiceException,
  ProvisionedThroughputExceededException,
  ResourceNotFoundException,
} from '@aws-sdk/client-kinesis';
import { NoSuchBucket, S3ServiceException } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import {
  awsErrorText,
  entryCodeTransient,
  isTransientAwsError,
  networkErrorCode,
} from '../../src/stages/aws/errors.ts';
import { StageError } from '../../src/stages/define.ts';

const meta = (httpStatusCode: number) => ({ httpStatusCode, attempts: 1, totalRetryDelay: 0 });

/** An S3 error as the SDK builds it from a response it has no class for. */
function s3Error(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: meta(status),
  });
}

function networkError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5999`), { code });
}

describe('AWS error classification', () => {
  it('treats throttling, service faults, 5xx and 429 as transient', () => {
    expect(
      isTransientAwsError(
        new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: meta(400) }),
      ),
    ).toBe(true);
    expect(isTransientAwsError(s3Error('SlowDown', 503))).toBe(true);
    expect(isTransientAwsError(s3Error('ThrottlingException', 400))).toBe(true);
    expect(isTransientAwsError(s3Error('KMSThrottlingException', 400))).toBe(true);
    expect(isTransientAwsError(s3Error('ServiceUnavailable', 503))).toBe(true);
    expect(isTransientAwsError(s3Error('SomethingNew', 502))).toBe(true);
    expect(isTransientAwsError(s3Error('SomethingNew', 429))).toBe(true);
    // The SDK marks what its own retry strategy would retry.
    const marked = s3Error('SomethingNew', 400);
    marked.$retryable = { throttling: true };
    expect(isTransientAwsError(marked)).toBe(true);
  });

  it('treats network errors as transient, also when wrapped as a cause', () => {
    expect(isTransientAwsError(networkError('ECONNREFUSED'))).toBe(true);
    expect(isTransientAwsError(networkError('ENOTFOUND'))).toBe(true);
    const wrapped = new Error('request failed', { cause: networkError('ECONNRESET') });
    expect(networkErrorCode(wrapped)).toBe('ECONNRESET');
    expect(isTransientAwsError(wrapped)).toBe(true);
    expect(isTransientAwsError(Object.assign(new Error('timed out'), { name: 'TimeoutError' }))).toBe(true);
  });

  it('treats errors about the destination as transient: they are waited out, not dead-lettered', () => {
    expect(isTransientAwsError(new NoSuchBucket({ message: 'gone', $metadata: meta(404) }))).toBe(true);
    expect(isTransientAwsError(s3Error('AccessDenied', 403))).toBe(true);
    expect(
      isTransientAwsError(new ResourceNotFoundException({ message: 'stream deleted', $metadata: meta(400) })),
    ).toBe(true);
    expect(isTransientAwsError(s3Error('ExpiredToken', 400))).toBe(true);
    expect(isTransientAwsError(s3Error('KMSDisabledException', 400))).toBe(true);
  });

  it('treats refusals of the content as permanent', () => {
    for (const name of [
      'ValidationException',
      'InvalidArgumentException',
      'InvalidParameterException',
      'InvalidParameter',
      'EntityTooLarge',
      'KeyTooLongError',
      'MessageTooLarge',
    ]) {
      expect(isTransientAwsError(s3Error(name, 400)), name).toBe(false);
    }
    expect(isTransientAwsError(s3Error('Unknown', 413))).toBe(false);
    expect(
      isTransientAwsError(
        new KinesisServiceException({
          name: 'InvalidArgumentException',
          $fault: 'client',
          $metadata: meta(400),
        }),
      ),
    ).toBe(false);
  });

  it("lets a stage's own verdict win", () => {
    expect(isTransientAwsError(new StageError('bad record', { retryable: false }))).toBe(false);
    expect(isTransientAwsError(new StageError('try later'))).toBe(true);
  });

  it('classifies batch entry codes with or without the Exception suffix, and leaves unknown ones to the caller', () => {
    expect(entryCodeTransient('KMSThrottling')).toBe(true);
    expect(entryCodeTransient('KMSAccessDenied')).toBe(true);
    expect(entryCodeTransient('InternalFailure')).toBe(true);
    expect(entryCodeTransient('ProvisionedThroughputExceededException')).toBe(true);
    expect(entryCodeTransient('InvalidParameter')).toBe(false);
    expect(entryCodeTransient('InvalidParameterValue')).toBe(false);
    expect(entryCodeTransient('SomethingNew')).toBeUndefined();
  });

  it('names the error code in failure reasons', () => {
    expect(awsErrorText(s3Error('SlowDown', 503))).toMatch(/^SlowDown/);
    expect(awsErrorText(networkError('ECONNREFUSED'))).toBe('connect ECONNREFUSED 127.0.0.1:5999');
  });
});
