/**
 * A small Dockerfile reader for the deploy tests: logical lines (continuations joined, comments
 * dropped), instructions grouped into stages. It understands what deploy/docker/Dockerfile uses
 * (FROM … AS, ARG, ENV, RUN, COPY [--from] [--chown], WORKDIR, USER, ENTRYPOINT, CMD); it is not
 * a general BuildKit parser (no heredocs, no escape directive).
 */
export interface Instruction {
  /** Upper-case keyword (FROM, RUN, …). */
  op: string;
  /** Everything after the keyword, continuations joined with a space. */
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Stage {
  /** Name after AS, or the stage index as a string. */
  name: string;
  /** Base image or earlier stage as written (ARGs not substituted). */
  from: string;
  instructions: Instruction[];
}

export interface ParsedDockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

export function parseDockerfile(text: string): ParsedDockerfile {
  const out: Instruction[] = [];
  let cur: Instruction | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    const trimmed = line.trim();
    if (cur === null) {
      if (trimmed === '' || trimmed.startsWith('#')) return;
      const m = /^(\w+)\s*(.*)$/.exec(trimmed);
      if (!m) throw new Error(`Dockerfile line ${i + 1}: cannot read ${JSON.stringify(line)}`);
      cur = { op: m[1].toUpperCase(), args: m[2], line: i + 1 };
    } else {
      if (trimmed.startsWith('#')) return; // comment lines inside a continued instruction
      cur.args += ' ' + trimmed;
    }
    if (cur.args.endsWith('\\')) {
      cur.args = cur.args.slice(0, -1).trimEnd();
    } else {
      out.push(cur);
      cur = null;
    }
  });
  if (cur) throw new Error(`Dockerfile ends inside a continued instruction (line ${(cur as Instruction).line})`);
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of out) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile line ${ins.line}: cannot read FROM ${ins.args}`);
      stages.push({ name: m[2] ?? String(stages.length), from: m[1], instructions: [] });
    } else if (stages.length === 0) {
      if (ins.op !== 'ARG') throw new Error(`Dockerfile line ${ins.line}: ${ins.op} before the first FROM`);
      const [k, v = ''] = ins.args.split('=');
      globalArgs[k.trim()] = v.trim();
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** The stages a target is built from (its FROM chain and every COPY --from), target last. */
export function stageChain(df: ParsedDockerfile, target: string): Stage[] {
  const byName = new Map(df.stages.map((s) => [s.name, s]));
  const seen = new Set<string>();
  const order: Stage[] = [];
  const visit = (name: string) => {
    const s = byName.get(name);
    if (!s || seen.has(name)) return;
    seen.add(name);
    visit(s.from);
    for (const ins of s.instructions) {
      const m = /--from=(\S+)/.exec(ins.args);
      if (ins.op === 'COPY' && m) visit(m[1]);
    }
    order.push(s);
  };
  visit(target);
  return order;
}

/** ENV assignments of one instruction (`K=V K2=V2` form). */
export function envAssignments(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) out[m[1]] = m[2].replace(/^"|"$/g, '');
  return out;
}
