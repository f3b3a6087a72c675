/**
 * The layering rules, enforced on every import in libs/, apps/ and bench/:
 * - a library never imports an app, bench/ or test/;
 * - an app never imports another app; bench/ never imports an app;
 * - a library imports only the libraries {@link ALLOWED} lists for it (spec files may also import
 *   @starq/testing); production code (not a spec) never imports @starq/testing;
 * - code under libs/, apps/ and bench/ reaches another package by its `@starq/<lib>` alias, not by
 *   a relative path into it.
 * The graph is written here and, as a picture, in docs/ARCHITECTURE.md; the last test checks that
 * both say the same.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The libraries each library may import (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  protocol: [],
  attention: ['protocol'],
  model: ['attention', 'protocol'],
  actors: ['protocol'],
  cluster: ['actors', 'attention', 'model', 'protocol'],
  report: [],
  sse: [],
  testing: ['model'],
};

/** The library only tests use. */
const TEST_ONLY_LIB = 'testing';

const ROOT = path.resolve(__dirname, '..');

/** Where a file or import target lives: a library, an app, bench/, test/, or outside the repo's code. */
type Place = { kind: 'lib' | 'app'; name: string } | { kind: 'bench' | 'test' } | { kind: 'other' };

function placeOf(rel: string): Place {
  const parts = rel.split('/');
  if (parts[0] === 'libs' && parts[1]) return { kind: 'lib', name: parts[1] };
  if (parts[0] === 'apps' && parts[1]) return { kind: 'app', name: parts[1] };
  if (parts[0] === 'bench') return { kind: 'bench' };
  if (parts[0] === 'test') return { kind: 'test' };
  return { kind: 'other' };
}

function describePlace(p: Place): string {
  return p.kind === 'lib' || p.kind === 'app' ? `${p.kind === 'lib' ? 'libs' : 'apps'}/${p.name}` : p.kind;
}

/** Module specifiers of every static import/export-from, dynamic import() and require() in `source`. */
export function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]);
  return out;
}

/** One broken rule: which file, which import, why. */
export interface Violation {
  file: string;
  spec: string;
  rule: string;
}

/** Repo-relative target of a specifier, or null for packages from node_modules and node builtins. */
function targetOf(file: string, spec: string): { rel: string; viaAlias: boolean } | null {
  const alias = /^@starq\/([^/]+)(\/.*)?$/.exec(spec);
  if (alias) return { rel: `libs/${alias[1]}/src${alias[2] ?? ''}`, viaAlias: true };
  if (!spec.startsWith('.')) return null;
  return { rel: path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)), viaAlias: false };
}

/** The layering violations among `files` (repo-relative path → source text). */
export function layeringViolations(files: ReadonlyMap<string, string>): Violation[] {
  const out: Violation[] = [];
  for (const [file, source] of files) {
    const from = placeOf(file);
    if (from.kind === 'test' || from.kind === 'other') continue;
    const isSpec = /\.(spec|e2e)\.ts$/.test(file);
    for (const spec of importsOf(source)) {
      const t = targetOf(file, spec);
      if (!t) continue;
      const to = placeOf(t.rel);
      const bad = (rule: string) => out.push({ file, spec, rule });
      const samePackage = (from.kind === 'lib' || from.kind === 'app') && to.kind === from.kind && to.name === from.name;
      if (samePackage || (from.kind === 'bench' && to.kind === 'bench')) continue;
      if (to.kind === 'other') {
        bad(`imports ${t.rel}, outside libs/, apps/, bench/ and test/`);
        continue;
      }
      if (!t.viaAlias && to.kind === 'lib') bad(`reaches ${describePlace(to)} by a relative path: import it as @starq/${to.name}`);
      if (to.kind === 'test') bad(`${describePlace(from)} imports test/ (shared test helpers live in libs/${TEST_ONLY_LIB})`);
      else if (to.kind === 'bench') bad(`${describePlace(from)} imports bench/`);
      else if (to.kind === 'app') {
        if (from.kind === 'lib') bad(`a library imports an app (${describePlace(to)}): move what both need into a library`);
        else if (from.kind === 'app') bad(`an app imports another app (${describePlace(to)}): move what both need into a library`);
        else bad(`bench/ imports an app (${describePlace(to)}): move what both need into a library`);
      } else if (to.kind === 'lib') {
        if (to.name === TEST_ONLY_LIB && !isSpec && from.kind !== 'lib') bad(`production code imports @starq/${TEST_ONLY_LIB} (test-only)`);
        if (from.kind === 'lib') {
          const allowed = ALLOWED[from.name];
          if (!allowed) bad(`libs/${from.name} is not in the allowed library graph: add it to ALLOWED in test/layering.spec.ts and to docs/ARCHITECTURE.md`);
          else if (to.name === TEST_ONLY_LIB && isSpec) continue;
          else if (to.name === TEST_ONLY_LIB && from.name !== TEST_ONLY_LIB) bad(`production code imports @starq/${TEST_ONLY_LIB} (test-only)`);
          else if (!allowed.includes(to.name)) bad(`libs/${from.name} may import ${allowed.join(', ') || 'no other library'}, not libs/${to.name}`);
        }
      }
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...sourceFiles(rel));
    else if (/\.(ts|js)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

function repoFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const dir of ['libs', 'apps', 'bench']) for (const f of sourceFiles(dir)) files.set(f, fs.readFileSync(path.join(ROOT, f), 'utf8'));
  return files;
}

describe('layering', () => {
  it('every import in libs/, apps/ and bench/ follows the rules', () => {
    const files = repoFiles();
    expect(files.size).toBeGreaterThan(100); // the scan found the code
    const report = layeringViolations(files).map((v) => `${v.file}: '${v.spec}' — ${v.rule}`);
    expect(report).toEqual([]);
  });

  it('every library under libs/ is in the allowed graph, and every graph entry exists', () => {
    const libs = fs.readdirSync(path.join(ROOT, 'libs')).sort();
    expect(Object.keys(ALLOWED).sort()).toEqual(libs);
  });

  it('catches each kind of bad import', () => {
    const cases: [string, string, RegExp][] = [
      ['libs/model/src/x.ts', "import { a } from '../../../apps/cli/src/options';", /a library imports an app/],
      ['libs/model/src/x.ts', "import { a } from '../../../test/helpers/cluster';", /imports test\//],
      ['libs/model/src/x.spec.ts', "import { a } from '../../../test/helpers/cluster';", /imports test\//],
      ['apps/cli/src/x.ts', "import { spawnGateway } from '../../gateway/src/gateway';", /an app imports another app/],
      ['bench/x.ts', "import { startProcessCluster } from '../apps/cli/src/commands/cluster';", /bench\/ imports an app/],
      ['libs/protocol/src/x.ts', "import type { Host } from '@starq/attention';", /libs\/protocol may import no other library, not libs\/attention/],
      ['libs/actors/src/x.ts', "export * from '@starq/cluster';", /libs\/actors may import protocol, not libs\/cluster/],
      ['libs/attention/src/x.ts', "const m = require('@starq/model');", /libs\/attention may import protocol, not libs\/model/],
      ['libs/model/src/x.ts', "import { mulberry32 } from '@starq/testing';", /production code imports @starq\/testing/],
      ['apps/gateway/src/x.ts', "import { TmpDirs } from '@starq/testing';", /production code imports @starq\/testing/],
      ['libs/cluster/src/x.ts', "import { loadConfig } from '../../model/src/config';", /by a relative path: import it as @starq\/model/],
      ['libs/newlib/src/x.ts', "import { StarqError } from '@starq/protocol';", /not in the allowed library graph/],
    ];
    for (const [file, source, rule] of cases) {
      const found = layeringViolations(new Map([[file, source]]));
      expect(found.map((v) => v.rule)).toEqual([expect.stringMatching(rule)]);
    }
    const fine = new Map([
      ['libs/model/src/x.spec.ts', "import { mulberry32 } from '@starq/testing';\nimport { StarqError } from '@starq/protocol';"],
      ['apps/cli/src/x.ts', "import { StarqClient } from '@starq/cluster';\nimport { x } from './y';\nimport fs from 'node:fs';"],
      ['bench/x.ts', "import { textTable } from '@starq/report';\nimport { f } from './lib/args';"],
      ['libs/model/src/y.ts', "// import { a } from '../../../apps/cli/src/options';\nconst s = 'not an import from \"@starq/cluster\"';"],
    ]);
    expect(layeringViolations(fine)).toEqual([]);
  });

  it('docs/ARCHITECTURE.md draws the same library graph', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8');
    const block = /<!-- layering:begin -->([\s\S]*?)<!-- layering:end -->/.exec(doc);
    expect(block).not.toBeNull();
    const drawn: Record<string, string[]> = {};
    for (const m of block![1].matchAll(/^\s*libs\/(\w+)\s+→\s+(.*)$/gm)) {
      drawn[m[1]] = m[2].trim() === '(nothing)' ? [] : m[2].split(',').map((s) => s.trim()).sort();
    }
    expect(drawn).toEqual(Object.fromEntries(Object.entries(ALLOWED).map(([k, v]) => [k, [...v].sort()])));
  });
});
