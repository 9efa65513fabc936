/**
 * Shared by the S3 and SNS integration tests: moto's endpoint from the environment, boto3 (a
 * client that is not ours) to set up and read back, the CLI as a child process.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import pino from 'pino';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import type { StageContext, StageKind } from '../../src/stages/define.ts';

export const ENDPOINT = process.env.AWS_ENDPOINT_URL ?? 'http://127.0.0.1:5000';
export const REGION = process.env.AWS_REGION ?? 'us-east-1';

/** The environment every AWS client here (ours, boto3, the CLI) sees. */
export const awsEnv: Record<string, string> = {
  AWS_ENDPOINT_URL: ENDPOINT,
  AWS_REGION: REGION,
  AWS_DEFAULT_REGION: REGION,
  AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'test',
  AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'test',
};
Object.assign(process.env, awsEnv);

export async function requireMoto(): Promise<void> {
  try {
    const res = await fetch(`${ENDPOINT}/moto-api/`, { signal: AbortSignal.timeout(3_000) });
    await res.arrayBuffer();
  } catch (e) {
    throw new Error(
      `moto is not reachable at ${ENDPOINT} (${(e as Error).message}): run scripts/services.sh up, or set AWS_ENDPOINT_URL`,
    );
  }
}

export const unique = (prefix: string) =>
  `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

/**
 * Runs a Python snippet with boto3 imported and `arg` (JSON from stdin) bound; whatever it
 * assigns to `out` comes back as JSON.
 */
export function boto3<T>(code: string, arg: unknown = null): Promise<T> {
  const script = `import boto3, json, sys, gzip\narg = json.load(sys.stdin)\nout = None\n${code}\nprint(json.dumps(out, default=str))\n`;
  return new Promise((resolveP, reject) => {
    const child = execFile(
      'python3',
      ['-c', script],
      { env: { ...process.env, ...awsEnv }, maxBuffer: 512 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`boto3 script failed: ${stderr || err.message}`));
        else resolveP(JSON.parse(stdout) as T);
      },
    );
    child.stdin?.end(JSON.stringify(arg));
  });
}

export function stageContext(name: string, kind: StageKind, type: string): StageContext {
  return {
    name,
    pipeline: 'it',
    log: pino({ level: 'silent' }),
    metrics: new MetricsRegistry('it').stage(name, kind, type),
    stateDir: '.',
  };
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

export interface CliRun {
  child: ChildProcess;
  stderr: () => string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  /** Resolves once stderr contains `text`. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
}

const ROOT = resolve(import.meta.dirname, '../..');

/** `sluice run <spec> --no-tui …` as a child process under the project's Node. */
export function runCli(spec: string, env: Record<string, string>, args: string[] = []): CliRun {
  const child = spawn(
    resolve(ROOT, 'node_modules/.bin/node'),
    ['src/cli.ts', 'run', spec, '--no-tui', ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...awsEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  const listeners: (() => void)[] = [];
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    for (const l of listeners) l();
  });
  child.stdout?.resume();
  const exited = new Promise<number | string>((r) =>
    child.on('exit', (code, signal) => r(code ?? signal ?? -1)),
  );
  return {
    child,
    stderr: () => err,
    exited,
    waitFor(text, timeoutMs = 30_000) {
      const has = () => (typeof text === 'string' ? err.includes(text) : text.test(err));
      return new Promise((res, rej) => {
        if (has()) return res();
        const timer = setTimeout(
          () => rej(new Error(`timed out waiting for ${text} in:\n${err}`)),
          timeoutMs,
        );
        const check = () => {
          if (has()) {
            clearTimeout(timer);
            res();
          }
        };
        listeners.push(check);
        exited.then(() => {
          clearTimeout(timer);
          if (!has()) rej(new Error(`process exited before ${text}:\n${err}`));
        });
      });
    },
  };
}
