/**
 * Shared configuration for AWS SDK clients. Credentials always come from the SDK's default
 * chain. A custom endpoint (spec `endpoint` or AWS_ENDPOINT_URL) gets an HTTP/1.1 handler:
 * the Kinesis client otherwise speaks HTTP/2, which moto and LocalStack do not.
 */
import type * as SmithyHttp from '@smithy/node-http-handler';
import type { NodeHttpHandler } from '@smithy/node-http-handler';
import { lazy } from '../../runtime/lazy.ts';

const smithyHttp = lazy<typeof SmithyHttp>('@smithy/node-http-handler');

export interface AwsStageOptions {
  region?: string;
  endpoint?: string;
}

export interface AwsClientConfig {
  region: string;
  endpoint?: string;
  requestHandler?: NodeHttpHandler;
  forcePathStyle?: boolean;
  maxAttempts: number;
}

export function awsClientConfig(
  opts: AwsStageOptions,
  extra?: { forcePathStyle?: boolean },
): AwsClientConfig {
  const endpoint = opts.endpoint ?? process.env.AWS_ENDPOINT_URL;
  const config: AwsClientConfig = {
    region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    // The runtime owns retries with backoff and error outputs; keep the SDK's own short.
    maxAttempts: 3,
  };
  if (endpoint) {
    config.endpoint = endpoint;
    config.requestHandler = new (smithyHttp().NodeHttpHandler)({
      connectionTimeout: 5_000,
      requestTimeout: 60_000,
    });
  }
  if (extra?.forcePathStyle) config.forcePathStyle = true;
  return config;
}
