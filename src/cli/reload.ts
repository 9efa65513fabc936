/**
 * What sets off a hot reload of `sluice run` and what it reports: SIGHUP always, and with
 * `--watch` a change to the spec, its plugin files or the env files. The spec is read and
 * validated again (plugins re-imported, env files re-read); an invalid one leaves the running
 * pipeline alone and its diagnostics are printed (logged and shown in the live view while a
 * screen UI owns the terminal); a valid one replaces the running pipeline (see
 * runtime/reload.ts).
 *
 * Watching uses `fs.watch` on the directories of the files, not on the files: editors save by
 * writing a new file and renaming it over the old one, which ends a watch on the file itself.
 * Events are gathered for a short while, as one save raises several.
 */
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ReloadingPipeline } from '../runtime/reload.ts';
import { hasErrors } from '../spec/diagnostics.ts';
import { loadSpec } from '../spec/load.ts';
import { PluginError, validate } from '../spec/plugins.ts';
import type { EnvFiles } from './env-file.ts';
import { colorEnabled, formatHuman } from './format.ts';

export interface ReloadSetup {
  file: string;
  /** `--plugin` files. */
  plugins: readonly string[];
  envFiles: EnvFiles;
  pipeline: ReloadingPipeline;
  log: Logger;
  /** Watch the files; without it only SIGHUP reloads. */
  watch: boolean;
  /** Print diagnostics on stderr (false while a screen UI owns the terminal: they are logged). */
  print: boolean;
}

export interface Reloader {
  /** Reads the spec again and applies it when valid and changed; resolves when done. */
  reload(trigger: string): Promise<void>;
  close(): void;
}

/** How long after the last file event a reload starts: one save raises several events. */
const SETTLE_MS = 200;

export function startReloads(setup: ReloadSetup): Reloader {
  let applied = inputsOf(setup, readText(setup.file));
  let running: Promise<void> | undefined;
  let again: string | undefined;
  let seq = 0;

  const once = async (trigger: string): Promise<void> => {
    const { log, pipeline } = setup;
    try {
      setup.envFiles.load();
    } catch (err) {
      return refuse(setup, `${(err as Error).message}`);
    }
    let text: string;
    try {
      text = await readFile(setup.file, 'utf8');
    } catch (err) {
      return refuse(setup, `cannot read ${setup.file}: ${(err as NodeJS.ErrnoException).code ?? ''}`);
    }
    const inputs = inputsOf(setup, text);
    if (inputs === applied) {
      log.info({ trigger }, 'reload: the spec, its plugins and env files are unchanged');
      return;
    }
    let result: Awaited<ReturnType<typeof validate>>;
    try {
      result = await validate(setup.file, { text, plugins: setup.plugins, fresh: String(++seq) });
    } catch (err) {
      if (!(err instanceof PluginError)) throw err;
      return refuse(setup, err.message);
    }
    if (!result.spec || hasErrors(result.diagnostics)) {
      const errors = result.diagnostics.filter((d) => d.severity === 'error');
      const first = errors[0];
      if (setup.print) {
        process.stderr.write(
          formatHuman(result.diagnostics, new Map([[setup.file, text]]), colorEnabled(process.stderr)),
        );
      }
      const where = first ? `${first.file}:${first.line}:${first.column}: ${first.message}` : '';
      return refuse(
        setup,
        `${errors.length} error${errors.length === 1 ? '' : 's'} in ${setup.file}${where ? ` (${where})` : ''}`,
        result.diagnostics,
      );
    }
    // Process-wide settings stay those of the start.
    if (result.spec.runtime.http !== pipeline.running.runtime.http)
      log.warn('reload: runtime.http changed; the operations endpoint stays where it is until a restart');
    log.info({ trigger }, 'reload: the spec changed and is valid; draining the running pipeline');
    const outcome = await pipeline.reload(result.spec);
    if (!outcome.applied) return refuse(setup, outcome.reason);
    applied = inputs;
    pipeline.metrics.notice = undefined;
    log.info(
      { restarted: outcome.restarted },
      outcome.restarted.length
        ? `reload: the new spec runs; ${outcome.restarted.join(', ')} start afresh (identity changed), the other sources resume`
        : 'reload: the new spec runs; every source resumes from its checkpoint',
    );
  };

  /** One reload at a time; triggers during one make one more after it. */
  const reload = (trigger: string): Promise<void> => {
    if (running) {
      again = trigger;
      return running;
    }
    running = once(trigger)
      .catch((err: Error) => refuse(setup, `reload failed: ${err.message}`))
      .finally(() => {
        running = undefined;
        const next = again;
        again = undefined;
        if (next) void reload(next);
      });
    return running;
  };

  const onHup = () => void reload('SIGHUP');
  process.on('SIGHUP', onHup);
  const watchers = setup.watch ? watchFiles(setup, () => void reload('file changed')) : [];
  return {
    reload,
    close() {
      process.off('SIGHUP', onHup);
      for (const w of watchers) w.close();
    },
  };
}

/** The running pipeline goes on: say why the new spec was not applied. */
function refuse(setup: ReloadSetup, reason: string, diagnostics?: readonly { message: string }[]): void {
  setup.log.error(
    { reason, diagnostics: diagnostics?.map((d) => d.message) },
    `reload refused, the running pipeline goes on: ${reason}`,
  );
  setup.pipeline.metrics.notice = `reload refused, the running pipeline goes on: ${reason}`;
}

/** Everything a reload reads, to tell whether anything changed. */
function inputsOf(setup: ReloadSetup, text: string): string {
  return [text, setup.envFiles.contents(), ...pluginFiles(setup, text).map(readText)].join('\0');
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** `--plugin` files and those the spec names (relative to it), as paths to read and watch. */
function pluginFiles(setup: ReloadSetup, text: string): string[] {
  const value = loadSpec(setup.file, text).value as { plugins?: unknown } | null | undefined;
  const named = Array.isArray(value?.plugins)
    ? value.plugins.filter((p): p is string => typeof p === 'string' && p !== '')
    : [];
  return [
    ...setup.plugins.map((p) => resolve(p)),
    ...named.map((p) => (isAbsolute(p) ? p : resolve(dirname(setup.file), p))),
  ];
}

function watchFiles(setup: ReloadSetup, changed: () => void): FSWatcher[] {
  const files = [setup.file, ...setup.envFiles.files, ...pluginFiles(setup, readText(setup.file))].map((f) =>
    resolve(f),
  );
  const byDir = new Map<string, Set<string>>();
  for (const f of files) {
    const names = byDir.get(dirname(f)) ?? new Set<string>();
    names.add(basename(f));
    byDir.set(dirname(f), names);
  }
  let timer: NodeJS.Timeout | undefined;
  const settle = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(changed, SETTLE_MS);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || names.has(name.toString())) settle();
      });
      w.on('error', (err) =>
        setup.log.warn({ dir, error: err.message }, 'watch: cannot watch this directory'),
      );
      watchers.push(w);
    } catch (err) {
      setup.log.warn({ dir, error: (err as Error).message }, 'watch: cannot watch this directory');
    }
  }
  return watchers;
}
