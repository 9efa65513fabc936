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
import(url.pathToFileURL(entry).href);
