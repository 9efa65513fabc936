/**
 * Endpoints of the real services that scripts/services.sh starts (moto, Apache Kafka, MariaDB),
 * read from the environment that `scripts/services.sh env` prints, with that script's defaults
 * when a variable is unset; a probe that fails the test (never skips it) when a service is down;
 * and runners for clients that are not sluice's own (boto3 through python3, kcat, mariadb).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type ServiceName = 'moto' | 'kafka' | 'mysql';

const KAFKA_VERSION = '4.1.2';
const HINT = 'start it with `scripts/services.sh up` and `eval "$(scripts/services.sh env)"`';

const env = (name: string): string | undefined => {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
};

/** AWS endpoint (moto), e.g. http://127.0.0.1:5000. */
export function awsEndpoint(): string {
  return env('AWS_ENDPOINT_URL') ?? `http://127.0.0.1:${env('MOTO_PORT') ?? '5000'}`;
}

export function awsRegion(): string {
  return env('AWS_REGION') ?? env('AWS_DEFAULT_REGION') ?? 'us-east-1';
}

export function awsCredentials(): { accessKeyId: string; secretAccessKey: string } {
  return {
    accessKeyId: env('AWS_ACCESS_KEY_ID') ?? 'test',
    secretAccessKey: env('AWS_SECRET_ACCESS_KEY') ?? 'test',
  };
}

/** Kafka bootstrap servers, comma separated, e.g. 127.0.0.1:9092. */
export function kafkaBrokers(): string {
  return env('KAFKA_BROKERS') ?? `127.0.0.1:${env('KAFKA_PORT') ?? '9092'}`;
}

/** Folder of the Kafka jars (broker and tools such as TopicCommand). */
export function kafkaLibs(): string {
  return (
    env('KAFKA_LIBS') ??
    join(env('XDG_CACHE_HOME') ?? join(homedir(), '.cache'), 'sluice', `kafka-${KAFKA_VERSION}`, 'libs')
  );
}

/** MySQL URL (MariaDB), e.g. mysql://root@127.0.0.1:3306/fazendas. */
export function mysqlUrl(): string {
  return env('MYSQL_URL') ?? `mysql://root@127.0.0.1:${env('MYSQL_PORT') ?? '3306'}/fazendas`;
}

export interface MysqlConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export function mysqlConfig(url: string = mysqlUrl()): MysqlConfig {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || '3306'),
    user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')),
  };
}

/** Where a service listens, as its clients name it. */
export function serviceAddress(name: ServiceName): string {
  switch (name) {
    case 'moto':
      return awsEndpoint();
    case 'kafka':
      return kafkaBrokers();
    case 'mysql':
      return mysqlUrl();
  }
}

function hostPort(name: ServiceName): { host: string; port: number } {
  switch (name) {
    case 'moto': {
      const u = new URL(awsEndpoint());
      return { host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) };
    }
    case 'kafka': {
      const first = kafkaBrokers().split(',')[0].trim();
      const i = first.lastIndexOf(':');
      return { host: first.slice(0, i), port: Number(first.slice(i + 1)) };
    }
    case 'mysql': {
      const c = mysqlConfig();
      return { host: c.host, port: c.port };
    }
  }
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (problem: string | undefined): void => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer in ${timeoutMs} ms`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (err) => done(err.message));
  });
}

/**
 * Fails (throws) unless the service's TCP port accepts a connection. Integration tests call it
 * first so that a missing service is a failure with a hint, not a skip or a hang.
 */
export async function requireService(name: ServiceName, timeoutMs = 3000): Promise<void> {
  const { host, port } = hostPort(name);
  const problem = await tcpProbe(host, port, timeoutMs);
  if (problem !== undefined) {
    throw new Error(`${name} is not reachable at ${serviceAddress(name)} (${problem}): ${HINT}`);
  }
}

/** A short random suffix for names that must not collide between runs. */
export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export interface RunOptions {
  /** Written to the command's standard input, then closed. */
  input?: string;
  /** Added to (and overriding) the inherited environment. */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command-line client; rejects with its stderr when it exits non-zero or times out. */
export function runCommand(
  command: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const why = timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${code ?? signal}`;
      reject(new Error(`${command} ${args.join(' ')} ${why}\n${stderr.trim()}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** The python that has boto3 (the one moto runs on), from `scripts/services.sh env`. */
export function pythonBin(): string {
  return env('SERVICES_PYTHON') ?? 'python3';
}

/**
 * Runs a python3 snippet with boto3 pointed at moto (AWS_ENDPOINT_URL, region and test
 * credentials in its environment). `input` reaches the snippet as JSON on stdin
 * (`json.load(sys.stdin)`). Returns what it printed.
 */
export async function runPython(
  code: string,
  input?: unknown,
  opts: Omit<RunOptions, 'input'> = {},
): Promise<string> {
  const { accessKeyId, secretAccessKey } = awsCredentials();
  const { stdout } = await runCommand(pythonBin(), ['-c', code], {
    ...opts,
    input: input === undefined ? '' : JSON.stringify(input),
    env: {
      AWS_ENDPOINT_URL: awsEndpoint(),
      AWS_REGION: awsRegion(),
      AWS_DEFAULT_REGION: awsRegion(),
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      PYTHONUNBUFFERED: '1',
      ...opts.env,
    },
  });
  return stdout;
}

/** Runs a Kafka command-line tool class from the broker's jars, e.g. TopicCommand. */
export function runKafkaTool(
  mainClass: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return runCommand(
    env('KAFKA_JAVA') ?? 'java',
    [
      '-Xmx256m',
      '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
      '-cp',
      `${kafkaLibs()}/*`,
      mainClass,
      ...args,
    ],
    opts,
  );
}

/** Runs SQL with the `mariadb` command-line client; returns its tab-separated rows. */
export async function runMariadb(sql: string, config: MysqlConfig = mysqlConfig()): Promise<string[][]> {
  const { stdout } = await runCommand(
    'mariadb',
    [
      '--no-defaults',
      '--protocol=TCP',
      `--host=${config.host}`,
      `--port=${config.port}`,
      `--user=${config.user}`,
      '--default-character-set=utf8mb4',
      '--batch',
      '--skip-column-names',
      ...(config.database ? [`--database=${config.database}`] : []),
    ],
    { input: sql, env: config.password ? { MYSQL_PWD: config.password } : {} },
  );
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split('\t'));
}
