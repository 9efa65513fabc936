/**
 * Helpers for the PostgreSQL integration tests: the server from scripts/services.sh, read back
 * with `psql` (not sluice's driver), and a probe that fails (never skips) when it is down.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const POSTGRES_URL =
  process.env.POSTGRES_URL || `postgres://postgres@127.0.0.1:${process.env.POSTGRES_PORT || '5432'}/sluice`;

/** The URL with another host:port (a relay in front of the server), same user and database. */
export function urlVia(port: number): string {
  const u = new URL(POSTGRES_URL);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

export async function requirePostgres(): Promise<void> {
  const u = new URL(POSTGRES_URL);
  const problem = await new Promise<string | undefined>((resolve) => {
    const socket = connect(Number(u.port || 5432), u.hostname);
    const done = (p?: string) => {
      socket.destroy();
      resolve(p);
    };
    socket.setTimeout(3000, () => done('no answer in 3 s'));
    socket.once('connect', () => done());
    socket.once('error', (e) => done(e.message));
  });
  if (problem !== undefined) {
    throw new Error(
      `postgres is not reachable at ${u.host} (${problem}): start it with \`scripts/services.sh up\` and \`eval "$(scripts/services.sh env)"\``,
    );
  }
}

/** Runs SQL with psql; rows as arrays of strings (unaligned, tab-separated, NULL as \N). */
export async function psql(statement: string): Promise<string[][]> {
  const { stdout } = await run(
    'psql',
    ['-X', '-v', 'ON_ERROR_STOP=1', '-At', '-F', '\t', '-P', 'null=\\N', '-d', POSTGRES_URL, '-c', statement],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

/** `name` as one quoted identifier, written here again so the check does not use sluice's own. */
export const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;
