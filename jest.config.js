/** Jest runs TypeScript through SWC (no type check here; `npm test` runs `tsc --noEmit` first). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/libs', '<rootDir>/apps', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e.ts'],
  transform: {
    '^.+\\.(t|j)s$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  moduleNameMapper: {
    '^@starq/(model|attention|actors|protocol|cluster|report|sse|testing)$': '<rootDir>/libs/$1/src/index.ts',
    '^@starq/(model|attention|actors|protocol|cluster|report|sse|testing)/(.*)$': '<rootDir>/libs/$1/src/$2',
  },
  testTimeout: 120000,
};
