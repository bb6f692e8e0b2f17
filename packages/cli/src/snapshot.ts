/**
 * Entry of nsinit's V8 startup snapshot (see scripts/bundle.mjs): everything is
 * loaded and initialised when the snapshot is built, so a run only deserialises
 * the heap and calls main.
 */
import { startupSnapshot } from 'node:v8';
import { main } from './cli.js';

startupSnapshot.setDeserializeMainFunction(() => {
  void main([process.execPath, 'nsinit', ...process.argv.slice(1)]);
});
