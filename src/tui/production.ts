/**
 * React and its reconciler pick their development or production build from NODE_ENV when
 * first loaded. The development build checks and records every render (several times the
 * CPU per frame), which a running pipeline pays for; so unless someone chose otherwise, the
 * live view loads the production build. Imported before `ink` and `react`.
 */
process.env.NODE_ENV ??= 'production';
