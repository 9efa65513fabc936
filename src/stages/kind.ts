/**
 * The kinds of stage, in a module that imports nothing: the runtime's metrics and the stage
 * contract (define.ts, which re-exports it) both need it, and neither may import the other.
 */
export type StageKind = 'source' | 'transform' | 'sink';
