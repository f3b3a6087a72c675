import fs from 'node:fs';
import path from 'node:path';

/** The embedded default model: ../shared/models/stories260K next to the repository, if present. */
export function defaultModelDir(): string | null {
  const dir = path.resolve(__dirname, '../../../../shared/models/stories260K');
  return fs.existsSync(path.join(dir, 'config.json')) ? dir : null;
}
