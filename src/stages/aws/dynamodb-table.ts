/**
 * A DynamoDB table that sluice owns (lease tables, dedup keys): created on demand, on-demand
 * billing, one string hash key, optionally with DynamoDB's TTL sweeping an expiry attribute.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Logger } from 'pino';
import { dynamodb } from './sdk.ts';

export interface OwnedTable {
  table: string;
  /** Name of the string hash key. */
  key: string;
  /** Epoch-seconds attribute DynamoDB deletes items by (only set when this call creates the table). */
  ttlAttribute?: string;
  log: Logger;
  /** What the table is for, in the creation log line. */
  purpose: string;
}

/** Creates the table when missing and waits until it is active. */
export async function ensureTable(client: DynamoDBClient, t: OwnedTable): Promise<void> {
  let created = false;
  try {
    await client.send(
      new (dynamodb().CreateTableCommand)({
        TableName: t.table,
        AttributeDefinitions: [{ AttributeName: t.key, AttributeType: 'S' }],
        KeySchema: [{ AttributeName: t.key, KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    created = true;
    t.log.info({ table: t.table }, `created the DynamoDB ${t.purpose} table`);
  } catch (err) {
    if (!(err instanceof dynamodb().ResourceInUseException)) throw err;
  }
  for (let i = 0; i < 120; i++) {
    try {
      const d = await client.send(new (dynamodb().DescribeTableCommand)({ TableName: t.table }));
      if (d.Table?.TableStatus === 'ACTIVE') {
        if (created && t.ttlAttribute) {
          await client.send(
            new (dynamodb().UpdateTimeToLiveCommand)({
              TableName: t.table,
              TimeToLiveSpecification: { AttributeName: t.ttlAttribute, Enabled: true },
            }),
          );
        }
        return;
      }
    } catch (err) {
      if (!(err instanceof dynamodb().ResourceNotFoundException)) throw err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`DynamoDB table ${t.table} did not become active`);
}
