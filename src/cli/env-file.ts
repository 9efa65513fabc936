/**
 * `--env-file .env`: variables from a dotenv file, treated like environment variables (the spec's
 * `${VAR}`, the AWS SDK's credentials, `SLUICE_*` settings), so their values are never printed.
 * The process environment wins over the file, as with Node's own `--env-file`: a deployment can
 * override one value without editing the file. The file is read again on a hot reload.
 */
import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';

export class EnvFileError extends Error {}

/** The `--env-file` values of a command line, read before the commands are built. */
export function envFilesIn(argv: readonly string[]): string[] {
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a === '--env-file' && i + 1 < argv.length) files.push(argv[++i]);
    else if (a.startsWith('--env-file=')) files.push(a.slice('--env-file='.length));
  }
  return files;
}

/** The env files of one process, loaded into its environment. */
export class EnvFiles {
  readonly files: readonly string[];
  private readonly env: Record<string, string | undefined>;
  /** Names the environment had before any file was read: they always win. */
  private readonly original: ReadonlySet<string>;
  /** Names the files set, dropped before they are read again. */
  private owned: string[] = [];

  constructor(files: readonly string[], env: Record<string, string | undefined> = process.env) {
    this.files = files;
    this.env = env;
    this.original = new Set(Object.keys(env));
  }

  /**
   * Reads the files in order into the environment (a later file wins over an earlier one, the
   * environment over both); reading them again drops what a file no longer sets. Throws
   * EnvFileError, and changes nothing, when a file cannot be read.
   */
  load(): void {
    const vars: Record<string, string> = {};
    for (const file of this.files) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new EnvFileError(`cannot read the env file ${file}: ${e.code ?? e.message}`);
      }
      Object.assign(vars, parseEnv(text));
    }
    for (const name of this.owned) delete this.env[name];
    this.owned = [];
    for (const [name, value] of Object.entries(vars)) {
      if (this.original.has(name)) continue;
      this.env[name] = value;
      this.owned.push(name);
    }
  }

  /** The files' contents, to tell whether a reload has anything new to read. */
  contents(): string {
    return this.files
      .map((f) => {
        try {
          return readFileSync(f, 'utf8');
        } catch {
          return '';
        }
      })
      .join('\0');
  }
}

let active = new EnvFiles([]);

/** Loads the `--env-file` files of `argv` into process.env, before any command reads it. */
export function loadEnvFilesOf(argv: readonly string[]): void {
  active = new EnvFiles(envFilesIn(argv));
  active.load();
}

/** The env files the command line named (none: an empty list), for `run` to read again on reload. */
export const commandLineEnvFiles = (): EnvFiles => active;
