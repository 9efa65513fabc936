#!/usr/bin/env node
// The `sluice` command of the npm package. Written so that any Node can parse it (CommonJS, no
// syntax newer than ES5 before the version check): an older Node prints one line and exits
// instead of failing on the first modern construct it meets in the real entry point.
'use strict';

var NEED = [22, 22];
var parts = process.versions.node.split('.');
var major = Number(parts[0]);
var minor = Number(parts[1]);
if (major < NEED[0] || (major === NEED[0] && minor < NEED[1])) {
  process.stderr.write(
    'sluice needs Node.js >= ' + NEED.join('.') + '; this is ' + process.versions.node + '\n'
  );
  process.exit(2);
}

var path = require('path');
var fs = require('fs');
var url = require('url');
// A checkout runs its TypeScript sources (Node strips the types); the package ships dist/ only.
var source = path.join(__dirname, '..', 'src', 'cli.ts');
var entry = fs.existsSync(source) ? source : path.join(__dirname, '..', 'dist', 'cli.js');
// Node keeps the code it compiles for these modules on disk (NODE_COMPILE_CACHE, else the temp
// directory), so later starts skip most of the compiling: about 0.4 s of a `sluice validate`.
var nodeModule = require('module');
if (typeof nodeModule.enableCompileCache === 'function') nodeModule.enableCompileCache();

// Heap settings for long runs, kept equal to the list in bin/sluice (a test checks): a 16 MB young
// generation instead of V8's 64 MB on large machines, and old space grown to twice the live set
// between full collections instead of up to four times, so a long run's RSS stays near its live
// set. V8 reads them only at start, so `run` and `dead-letter` (which run pipelines) replace this
// process with one started with them (process.execve: same pid, so signals still reach the
// pipeline); the short commands keep the start-up time. A flag named in NODE_OPTIONS or on the
// command line is left to it.
var HEAP_FLAGS = ['--max-semi-space-size=16', '--heap-growing-percent=100'];
var given = (process.env.NODE_OPTIONS || '') + ' ' + process.execArgv.join(' ');
var missing = HEAP_FLAGS.filter(function (flag) {
  return given.indexOf(flag.split('=')[0]) < 0;
});
var command = process.argv[2];
if (
  missing.length > 0 &&
  (command === 'run' || command === 'dead-letter') &&
  typeof process.execve === 'function' &&
  process.platform !== 'win32'
) {
  try {
    process.execve(
      process.execPath,
      [process.execPath].concat(process.execArgv, missing, [__filename], process.argv.slice(2)),
      process.env
    );
  } catch (err) {
    // A system that refuses the exec (a sandbox, no memory): run here with V8's defaults.
  }
}
import(url.pathToFileURL(entry).href);
