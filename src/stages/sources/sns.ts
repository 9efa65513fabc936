/** `sns` source: an HTTP endpoint for SNS subscriptions with signature verification. */
import { Type } from '@sinclair/typebox';
import { AwsOptions, Duration, Size } from '../../spec/types.ts';
import { defineSource, NotImplementedError } from '../define.ts';

export const snsSource = defineSource({
  type: 'sns',
  kind: 'source',
  description: 'Receives SNS notifications over HTTP(S), verifies their signatures, answers 200 only once the records are durable.',
  options: Type.Object({
    listen: Type.Object(
      {
        address: Type.Optional(Type.String({ default: '127.0.0.1', description: 'Address to bind' })),
        port: Type.Integer({ minimum: 0, maximum: 65535, description: 'Port to bind', examples: [8080] }),
        path: Type.Optional(Type.String({ default: '/', pattern: '^/', description: 'Path SNS posts to' })),
      },
      { additionalProperties: false },
    ),
    ...AwsOptions,
    topic_arn: Type.Optional(
      Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
        description: 'Allowed topic ARNs; messages from other topics get 403',
      }),
    ),
    verify: Type.Optional(Type.Boolean({ default: true, description: 'Verify message signatures (turn off only for local tests)' })),
    cert_host: Type.Optional(Type.String({ description: 'Allowed host pattern of SigningCertURL; default sns.<region>.amazonaws.com' })),
    subscribe: Type.Optional(Type.String({ description: 'When set, subscribe this URL (our endpoint) to the topic at start' })),
    raw: Type.Optional(Type.Boolean({ default: false, description: 'Raw message delivery (no envelope)' })),
    codec: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('text')], { default: 'json' })),
    max_body: Type.Optional(Size({ default: '256KiB', description: 'Largest request body accepted' })),
    max_concurrent: Type.Optional(Type.Integer({ minimum: 1, default: 64, description: 'Requests handled at once; more get 503' })),
    request_timeout: Type.Optional(Duration({ default: '30s', description: 'Longest a request may take, ack wait included' })),
  }),
  check(o, report) {
    if (o.verify === false) report(['verify'], 'insecure-setting', 'signature verification is off: anyone who can reach this port can inject records', 'warning');
  },
  create() {
    throw new NotImplementedError('sns', 'source');
  },
});
