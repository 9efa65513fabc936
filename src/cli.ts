#!/usr/bin/env node
import { glob, readFile } from 'node:fs/promises';
/**
 * sluice command line: run, validate, schema, graph. Only this layer prints and picks exit codes.
 * Each command loads its own modules when it runs (`await import`), so a start pays only for the
 * command it runs: `validate` never loads the engine, the test runner or the live view.
 */
import { Command, Option } from 'commander';
import type { DeadLetterFlags } from './cli/dead-letter.ts';
import type { DocsFlags } from './cli/docs.ts';
import { EnvFileError, loadEnvFilesOf } from './cli/env-file.ts';
import { colorEnabled, type Format, formatGithub, formatHuman, formatJson } from './cli/format.ts';
import { toDot, toMermaid } from './cli/graph.ts';
import type { TestFlags } from './cli/test.ts';
import { DEFAULT_HTTP_ADDRESS } from './runtime/listen.ts';
import type { LogFormat } from './runtime/log.ts';
import { hasErrors } from './spec/diagnostics.ts';
import { allowUnsetEnv } from './spec/load.ts';
import { PluginError, stagesWith, validate } from './spec/plugins.ts';
import { pipelineJsonSchema } from './spec/schema.ts';
import { parseDuration } from './spec/units.ts';
import { isTestFile, loadTest } from './testing/load.ts';

const EXIT_INVALID = 1;
const EXIT_USAGE = 2;

async function expandArgs(patterns: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of patterns) {
    if (/[*?[{]/.test(p)) {
      const found: string[] = [];
      for await (const f of glob(p)) found.push(f);
      if (found.length === 0) throw new UsageError(`no file matches ${p}`);
      files.push(...found.sort());
    } else files.push(p);
  }
  return files;
}

class UsageError extends Error {}

async function flushStd(): Promise<void> {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.writableLength > 0) await new Promise<void>((resolve) => stream.once('drain', resolve));
  }
}

async function validateCommand(
  patterns: string[],
  opts: { format: Format; plugin: string[]; allowUnsetEnv?: boolean },
): Promise<number> {
  const files = await expandArgs(patterns);
  const sources = new Map<string, string>();
  const all = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new UsageError(
        `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    sources.set(file, text);
    // Test files live beside the specs (pipelines/*.test.yaml): checked against their own schema.
    if (isTestFile(file)) all.push(...loadTest(file, text).diagnostics);
    else {
      const { diagnostics } = await validate(file, { text, plugins: opts.plugin });
      all.push(...(opts.allowUnsetEnv ? allowUnsetEnv(diagnostics) : diagnostics));
    }
  }
  const out =
    opts.format === 'json'
      ? formatJson(all)
      : opts.format === 'github'
        ? formatGithub(all)
        : formatHuman(all, sources, colorEnabled(process.stdout));
  process.stdout.write(out);
  if (opts.format === 'human') {
    const errors = all.filter((d) => d.severity === 'error').length;
    const warnings = all.length - errors;
    process.stderr.write(
      `${files.length} file${files.length === 1 ? '' : 's'} checked: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}\n`,
    );
  }
  return hasErrors(all) ? EXIT_INVALID : 0;
}

async function graphCommand(file: string, opts: { format: 'mermaid' | 'dot' }): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const result = await validate(file, { text });
  if (!result.spec) {
    process.stderr.write(
      formatHuman(result.diagnostics, new Map([[file, text]]), colorEnabled(process.stderr)),
    );
    return EXIT_INVALID;
  }
  // The graph shows names and types; a type that came from the environment is not shown.
  const stages = result.spec.stages.map((s) =>
    result.loaded.fromEnv.has(`${s.kind}s/${s.name}/type`) ? { ...s, type: '(from environment)' } : s,
  );
  const spec = { ...result.spec, stages };
  process.stdout.write(opts.format === 'dot' ? toDot(spec) : toMermaid(spec));
  return 0;
}

/** `--plugin` may be given more than once. */
const pluginOption = (c: Command): Command =>
  c.option(
    '--plugin <file>',
    'a module defining more stage types (repeatable; besides the plugins the spec lists)',
    (file: string, files: string[]) => [...files, file],
    [],
  );

const durationArg = (v: string): number => {
  const ms = parseDuration(v);
  if (ms === undefined) throw new UsageError(`'${v}' is not a duration (e.g. 500ms, 5s, 1m)`);
  return ms;
};

export function program(): Command {
  const cmd = new Command('sluice')
    .description(
      'Run streaming data pipelines written as YAML: Kinesis, SNS, Kafka, S3, MySQL and local files, at-least-once.',
    )
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride()
    // Read by main() before the commands are built, so SLUICE_* settings may come from the file too.
    .option(
      '--env-file <file>',
      'read environment variables from a dotenv file (repeatable; the environment wins; values are never printed)',
      (file: string, files: string[]) => [...files, file],
      [],
    );

  pluginOption(cmd.command('validate'))
    .description(
      'Check spec files: YAML, schema, wiring, AWS limits and literal secrets, each problem with its line and column',
    )
    .argument('<files...>', 'spec files or globs (pipelines/*.yaml)')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['human', 'json', 'github'])
        .default('human'),
    )
    .option(
      '--allow-unset-env',
      'an unset ${VAR} without default is a warning, not an error (CI without the secrets); the value that reads it is not checked',
    )
    .addHelpText('after', '\nExit codes: 0 valid (warnings allowed), 1 invalid, 2 usage or I/O error.')
    .action(async (files: string[], opts: { format: Format; plugin: string[]; allowUnsetEnv?: boolean }) => {
      process.exitCode = await validateCommand(files, opts);
    });

  pluginOption(cmd.command('run'))
    .description('Run a pipeline; a live view on a terminal, plain metric lines otherwise')
    .argument('<file>', 'spec file')
    .option('--no-tui', 'plain metric lines on stderr instead of the live view')
    .option(
      '--exit-idle <duration>',
      'stop cleanly when no source produced anything for this long',
      durationArg,
    )
    .option(
      '--state-dir <dir>',
      'directory for checkpoints and logs (env SLUICE_STATE_DIR)',
      process.env.SLUICE_STATE_DIR ?? '.sluice',
    )
    .option('--metrics-interval <duration>', 'interval of the plain metric lines', durationArg, 1000)
    .option('--log-level <level>', 'trace, debug, info, warn, error', process.env.SLUICE_LOG_LEVEL ?? 'info')
    .addOption(
      new Option(
        '--log-format <format>',
        'JSON lines, or readable lines (default: pretty on a terminal, json otherwise and in the log file)',
      ).choices(['json', 'pretty']),
    )
    .option(
      '--watch',
      'reload when the spec, its plugin files or --env-file files change (SIGHUP always reloads); an invalid spec leaves the pipeline running',
    )
    .option(
      '--http [address]',
      `serve /metrics (Prometheus), /ready, /live and /stats at [host:]port (${DEFAULT_HTTP_ADDRESS} when no address is given; overrides runtime.http)`,
    )
    .addHelpText(
      'after',
      '\nExit codes: 0 every record reached its sinks or was dropped or deduplicated on purpose; 3 the run completed but records went to error outputs or dead letters (counted on the last line); 1 the pipeline failed, or records were left unacknowledged at exit; 2 usage; 130 a second signal cut the drain short.',
    )
    .action(
      async (
        file: string,
        opts: {
          tui: boolean;
          exitIdle?: number;
          stateDir: string;
          metricsInterval: number;
          logLevel: string;
          logFormat?: LogFormat;
          watch?: boolean;
          http?: string | true;
          plugin: string[];
        },
      ) => {
        const http = opts.http === true ? DEFAULT_HTTP_ADDRESS : opts.http;
        const { runCommand } = await import('./cli/run.ts');
        const code = await runCommand(file, { ...opts, http, plugins: opts.plugin });
        // Timers or sockets of a stage that did not close must not keep a finished run alive.
        await flushStd();
        process.exit(code);
      },
    );

  cmd
    .command('top')
    .description(
      'Attach the live view to a pipeline running elsewhere (sluice run --http): read-only, q quits top, never the pipeline',
    )
    .option('--http <url>', 'the pipeline endpoint', `http://${DEFAULT_HTTP_ADDRESS}`)
    .option('--interval <duration>', 'how often to poll /stats', durationArg, 500)
    .action(async (opts: { http: string; interval: number }) => {
      const { topCommand } = await import('./cli/top.ts');
      process.exitCode = await topCommand(opts);
    });

  const deadLetter = cmd
    .command('dead-letter')
    .description(
      'List or replay the records that failed for good in stages whose error output is not wired (kept under <state-dir>/<pipeline>/dead-letter/)',
    );
  const dlOptions = (c: Command) =>
    c
      .argument('<file>', 'spec file')
      .option(
        '--state-dir <dir>',
        'state directory of the runs (env SLUICE_STATE_DIR)',
        process.env.SLUICE_STATE_DIR ?? '.sluice',
      )
      .option('--stage <name>', 'only the dead letters of this stage');
  dlOptions(
    deadLetter
      .command('ls')
      .description('Dead letters per stage: count, time range, most frequent reasons, files'),
  )
    .addOption(
      new Option('-f, --format <format>', 'output format').choices(['human', 'json']).default('human'),
    )
    .action(async (file: string, opts: DeadLetterFlags) => {
      const { deadLetterList } = await import('./cli/dead-letter.ts');
      process.exitCode = await deadLetterList(file, opts);
    });
  dlOptions(
    deadLetter
      .command('replay')
      .description(
        'Send dead letters again into the stage they failed in (the sources do not run); replayed files are removed, records failing again become new dead letters',
      ),
  )
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'warn')
    .addHelpText(
      'after',
      '\nExit codes: 0 all delivered, 3 some failed again (new dead letters), 1 the replay failed (files kept).',
    )
    .action(async (file: string, opts: DeadLetterFlags) => {
      const { deadLetterReplay } = await import('./cli/dead-letter.ts');
      const code = await deadLetterReplay(file, opts);
      await flushStd();
      process.exit(code);
    });

  cmd
    .command('test')
    .description(
      'Run pipeline test files (<spec>.test.yaml): records into the sources, the real transforms and sink encoders, no service; each case against its expectations',
    )
    .argument('<files...>', "test files or globs ('pipelines/*.test.yaml')")
    .addOption(
      new Option('-f, --format <format>', 'output format').choices(['human', 'github']).default('human'),
    )
    .option('--update', 'write what a case produces into each case whose `expect` is absent or empty')
    .addHelpText(
      'after',
      '\nExit codes: 0 every case passed (or was written), 1 a case failed or a file is invalid, 2 usage.',
    )
    .action(async (patterns: string[], opts: TestFlags) => {
      const { testCommand } = await import('./cli/test.ts');
      const code = await testCommand(await expandArgs(patterns), opts);
      await flushStd();
      process.exit(code);
    });

  cmd
    .command('eval')
    .description(
      'Evaluate one CEL expression against one record: prints the value and its CEL type, or the error',
    )
    .argument('<expr>', "the expression, e.g. 'peso_medio * 0.025 * quantidade_animais'")
    .option('--record <json>', 'the record, as JSON', '{}')
    .option('--meta <json>', 'the source metadata (meta.*), as JSON')
    .action(async (expr: string, opts: { record?: string; meta?: string }) => {
      const { evalCommand } = await import('./cli/eval.ts');
      const out = evalCommand(expr, opts);
      process.stdout.write(out.stdout);
      process.stderr.write(out.stderr);
      process.exitCode = out.code;
    });

  pluginOption(cmd.command('list'))
    .description('List the stage types: kind, type and what each does (plugin stages too, with --plugin)')
    .action(async (opts: { plugin: string[] }) => {
      const { listCommand } = await import('./cli/docs.ts');
      process.exitCode = await listCommand(opts);
    });

  pluginOption(cmd.command('docs'))
    .description(
      'Print the reference of a stage type: options with types, defaults and examples, record metadata, transient failures, limits, an example pipeline',
    )
    .argument('[type]', 'stage type (e.g. mysql); without it, the list of types')
    .addOption(new Option('--kind <kind>', 'only this kind').choices(['source', 'transform', 'sink']))
    .addHelpText('after', '\nThe same pages are in docs/stages/. Exit codes: 0 printed, 2 no such type.')
    .action(async (type: string | undefined, opts: DocsFlags) => {
      const { docsCommand } = await import('./cli/docs.ts');
      process.exitCode = await docsCommand(type, opts);
    });

  pluginOption(cmd.command('schema'))
    .description('Print the JSON Schema (2020-12) of pipeline specs, for editors and CI')
    .action(async (opts: { plugin: string[] }) => {
      const stages = await stagesWith(opts.plugin);
      process.stdout.write(`${JSON.stringify(pipelineJsonSchema(stages), null, 2)}\n`);
    });

  cmd
    .command('graph')
    .description('Print the wiring of a pipeline (names and types only)')
    .argument('<file>', 'spec file')
    .addOption(
      new Option('-f, --format <format>', 'output format').choices(['mermaid', 'dot']).default('mermaid'),
    )
    .action(async (file: string, opts: { format: 'mermaid' | 'dot' }) => {
      process.exitCode = await graphCommand(file, opts);
    });

  const state = cmd
    .command('state')
    .description('Show or forget where the sources of a pipeline resume (checkpoints, committed offsets)')
    .addHelpText('after', '\nExit codes: 0 done, 1 error (invalid spec, unreadable state), 2 usage.');
  const stateDirOption = (c: Command) =>
    c
      .argument('<file>', 'spec file')
      .option(
        '--state-dir <dir>',
        'state directory of the runs (env SLUICE_STATE_DIR)',
        process.env.SLUICE_STATE_DIR ?? '.sluice',
      );
  // Remote stores (Kafka, DynamoDB) may leave client handles behind: exit once output is out.
  const finish = async (work: () => Promise<number>) => {
    let code: number;
    try {
      code = await work();
    } catch (err) {
      const { StateUsageError } = await import('./cli/state.ts');
      if (!(err instanceof StateUsageError)) throw err;
      process.stderr.write(`sluice: ${err.message}\n`);
      code = EXIT_USAGE;
    }
    await flushStd();
    process.exit(code);
  };
  stateDirOption(
    state
      .command('show')
      .description(
        'Per source and partition, the stored position and where it lives (state file, DynamoDB table, Kafka group)',
      ),
  )
    .addOption(
      new Option('-f, --format <format>', 'output format').choices(['human', 'json']).default('human'),
    )
    .action((file: string, opts: { stateDir: string; format: 'human' | 'json' }) =>
      finish(async () => (await import('./cli/state.ts')).stateShow(file, opts)),
    );
  stateDirOption(
    state
      .command('reset')
      .description(
        'Remove the positions the state file holds for the pipeline (or one source), so the next run reads from the start; needs --yes',
      ),
  )
    .option('--source <name>', 'only this source')
    .option('--yes', 'really remove (without it, only lists what would go and exits 2)')
    .addHelpText(
      'after',
      '\nStop the pipeline first: a running one writes its positions again. Kafka offsets and DynamoDB checkpoints are not changed; the command says how to reset them.',
    )
    .action((file: string, opts: { stateDir: string; source?: string; yes?: boolean }) =>
      finish(async () => (await import('./cli/state.ts')).stateReset(file, opts)),
    );
  return cmd;
}

async function main(argv: string[]): Promise<void> {
  try {
    loadEnvFilesOf(argv.slice(2));
    await program().parseAsync(argv);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message: string };
    if (e.code?.startsWith('commander.')) {
      // Help and version exit 0; usage mistakes exit 2 (commander already printed them).
      process.exitCode =
        e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0
          ? 0
          : EXIT_USAGE;
      return;
    }
    process.stderr.write(`sluice: ${e.message}\n`);
    // A --plugin that does not load is a mistake on the command line.
    process.exitCode =
      err instanceof UsageError || err instanceof PluginError || err instanceof EnvFileError ? EXIT_USAGE : 1;
  }
}

await main(process.argv);
