import { sharedModel } from './shared-fixtures';

/** The default model of `starq demo` and `starq cluster up`: the shared stories260K, if present. */
export function defaultModelDir(): string | null {
  const m = sharedModel('stories260K');
  return m.present ? m.path : null;
}
