/**
 * The OCI runtime-spec: `config.json` schema and types, parsing and loading,
 * the default (`nsinit spec`) configuration, and the container state.
 */
export * from './config.js';
export * from './default.js';
export * from './errors.js';
export * from './parse.js';
export * from './state.js';
