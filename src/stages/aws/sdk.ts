/**
 * The AWS SDK clients, each loaded the first time a stage builds one (see runtime/lazy.ts): the
 * SDK is most of what importing the stage modules would cost, and validation needs none of it.
 */
import type * as DynamoDB from '@aws-sdk/client-dynamodb';
import type * as Firehose from '@aws-sdk/client-firehose';
import type * as Kinesis from '@aws-sdk/client-kinesis';
import type * as Sns from '@aws-sdk/client-sns';
import { lazy } from '../../runtime/lazy.ts';

export const dynamodb = lazy<typeof DynamoDB>('@aws-sdk/client-dynamodb');
export const firehose = lazy<typeof Firehose>('@aws-sdk/client-firehose');
export const kinesis = lazy<typeof Kinesis>('@aws-sdk/client-kinesis');
export const sns = lazy<typeof Sns>('@aws-sdk/client-sns');
