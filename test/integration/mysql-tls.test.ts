/**
 * The mysql sink over TLS against MariaDB from scripts/services.sh, whose certificate the test
 * CA signs for 127.0.0.1 and localhost. The rows are written as a user that the server admits
 * only over TLS (REQUIRE SSL), and read back by the mariadb client over TLS (--ssl-ca, server
 * certificate verified). A certificate no trusted CA signed, and one that does not name the host
 * connected to (127.0.0.2, forwarded to the server), fail at start with the reason.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MysqlSink, mysqlSink } from '../../src/stages/sinks/mysql/index.ts';
import { batchOf, requireMysql, sinkContext, sql, suffix } from './mysql-harness.ts';
import { mysqlConfig } from './services.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const CA = process.env.SLUICE_TEST_CA || join(root, '.services/tls/ca.pem');
const server = mysqlConfig();
const user = `sluice_tls_${suffix()}`;
const password = randomBytes(9).toString('hex');
const table = `tls_rows_${suffix()}`;
const urlOf = (host: string, port: number) =>
  `mysql://${user}:${password}@${host}:${port}/${server.database}`;

let forwarder: Server | undefined;
const sockets = new Set<Socket>();

beforeAll(async () => {
  await requireMysql();
  const [[haveSsl]] = await sql('SELECT @@have_ssl');
  if (haveSsl !== 'YES') {
    throw new Error(
      `MariaDB at ${server.host}:${server.port} serves no TLS (have_ssl = ${haveSsl}): restart it with \`scripts/services.sh up\``,
    );
  }
  await sql(
    `CREATE USER '${user}'@'%' IDENTIFIED BY '${password}' REQUIRE SSL; GRANT ALL ON \`${server.database}\`.* TO '${user}'@'%'; CREATE TABLE \`${table}\` (id VARCHAR(32) PRIMARY KEY, peso DOUBLE)`,
  );
}, 30_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  forwarder?.close();
  await sql(`DROP USER IF EXISTS '${user}'@'%'; DROP TABLE IF EXISTS \`${table}\``);
});

async function openSink(url: string, tls: unknown): Promise<MysqlSink> {
  const sink = mysqlSink.create({ url, table, mode: 'upsert', tls } as never, sinkContext()) as MysqlSink;
  try {
    await sink.open();
  } catch (err) {
    await sink.close();
    throw err;
  }
  return sink;
}

const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: Error) => e,
  );

/** The mariadb client over TLS, verifying the server's certificate against the test CA. */
async function readOverTls(): Promise<string[][]> {
  const { stdout } = await run('mariadb', [
    '--no-defaults',
    '--protocol=TCP',
    '-h',
    server.host,
    '-P',
    String(server.port),
    '-u',
    user,
    `-p${password}`,
    `--ssl-ca=${CA}`,
    '--ssl-verify-server-cert',
    '-D',
    server.database,
    '--batch',
    '--skip-column-names',
    '-e',
    `SELECT id, peso FROM \`${table}\` ORDER BY id; SHOW SESSION STATUS LIKE 'Ssl_version'`,
  ]);
  return stdout
    .trim()
    .split('\n')
    .map((l) => l.split('\t'));
}

/** 127.0.0.2:port forwarded to the server: same certificate, a host it does not name. */
async function otherAddress(): Promise<number> {
  const s = createServer((client) => {
    const upstream = connect(server.port, server.host);
    for (const x of [client, upstream]) {
      sockets.add(x);
      x.on('error', () => undefined);
      x.on('close', () => sockets.delete(x));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.2', () => resolve());
  });
  forwarder = s;
  return (s.address() as { port: number }).port;
}

describe('mysql sink over TLS', () => {
  it('writes rows as a user admitted only over TLS; the mariadb client reads them over TLS', async () => {
    const sink = await openSink(urlOf(server.host, server.port), { ca_file: CA });
    try {
      expect(
        await sink.write(
          batchOf([
            { id: 'a', peso: 401.5 },
            { id: 'b', peso: 388 },
          ]),
        ),
      ).toBeUndefined();
    } finally {
      await sink.close();
    }
    const rows = await readOverTls();
    expect(rows.slice(0, 2)).toEqual([
      ['a', '401.5'],
      ['b', '388'],
    ]);
    expect(rows[2][0]).toBe('Ssl_version');
    expect(rows[2][1]).toMatch(/^TLSv1\.[23]$/);
  });

  it('without tls the same user is refused: TLS is what the rows came through', async () => {
    const err = await failureOf(openSink(urlOf(server.host, server.port), undefined));
    expect(err?.message).toMatch(/Access denied/);
    expect(err?.message).not.toContain(password);
  });

  it('refuses a server certificate no trusted CA signed', async () => {
    // tls: true trusts the system's CAs, which never signed the test CA.
    const err = await failureOf(openSink(urlOf(server.host, server.port), true));
    expect(err?.message).toContain(
      `mysql: TLS to ${server.host}:${server.port} failed: the server certificate is not signed by a trusted CA`,
    );
    expect(err?.message).not.toContain(password);
  });

  it('checks that the certificate names the host, unless verify_identity is false', async () => {
    const port = await otherAddress();
    const err = await failureOf(openSink(urlOf('127.0.0.2', port), { ca_file: CA }));
    expect(err?.message).toContain(
      `mysql: TLS to 127.0.0.2:${port} failed: the server certificate does not name this host`,
    );
    const sink = await openSink(urlOf('127.0.0.2', port), { ca_file: CA, verify_identity: false });
    try {
      expect(await sink.write(batchOf([{ id: 'c', peso: 1 }]))).toBeUndefined();
    } finally {
      await sink.close();
    }
    expect((await readOverTls()).map((r) => r[0])).toContain('c');
  });
});
