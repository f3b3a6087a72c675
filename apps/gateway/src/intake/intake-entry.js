// Intake worker bootstrap: make TypeScript (and the @starq/* path aliases) loadable inside the
// worker, whether the parent runs under tsx, jest or plain node, then start the real worker.
require('tsx/cjs/api').register({ tsconfig: require('path').resolve(__dirname, '../../../../tsconfig.json') });
require('./intake-worker.ts');
