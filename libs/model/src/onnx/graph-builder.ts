/**
 * A tiny ONNX graph builder over the `onnx-proto` protobuf bindings. Graphs are written as a list of
 * ops with named values, much like writing the ONNX text format by hand; `toBytes()` serialises a
 * ModelProto that onnxruntime loads directly from memory.
 */
import { onnx } from 'onnx-proto';

export type ElemType = 'float32' | 'int64' | 'int32' | 'bool';
/** A dimension: a fixed size or a symbolic name (e.g. 'T'). */
export type Dim = number | string;

/** Attribute values: integers, integer lists, floats (tagged), strings. */
export type AttrValue = number | number[] | { float: number } | { floats: number[] } | string;

const DT = onnx.TensorProto.DataType;
const ELEM: Record<ElemType, number> = {
  float32: DT.FLOAT,
  int64: DT.INT64,
  int32: DT.INT32,
  bool: DT.BOOL,
};

/** Default opset: 18 (ReduceMax/ReduceSum/ReduceMean take axes as an input, Split takes `split`). */
export const DEFAULT_OPSET = 18;

export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly used = new Set<string>();
  /** Operator domains other than the default ONNX one that the nodes use (e.g. 'com.microsoft'). */
  private readonly domains = new Set<string>();
  private counter = 0;

  constructor(private readonly name: string) {}

  /** Declare a graph input. */
  input(name: string, type: ElemType, dims: Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Declare a graph output; `value` is renamed to `name` through an Identity when they differ. */
  output(name: string, value: string, type: ElemType, dims: Dim[]): void {
    if (value !== name) {
      this.claim(name);
      this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `out_${name}` });
    }
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** A float32 initializer (weights). The bytes are referenced, not copied, until `toBytes()`. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) throw new Error(`initializer ${name}: ${data.length} values for dims [${dims}]`);
    this.claim(name);
    this.initializers.push({
      name,
      dataType: DT.FLOAT,
      dims,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** A small float32 constant (scalar when `dims` is []). */
  constF(values: number[] | number, dims?: number[]): string {
    const arr = Float32Array.from(Array.isArray(values) ? values : [values]);
    return this.weight(this.fresh('cf'), arr, dims ?? (Array.isArray(values) ? [values.length] : []));
  }

  /** A small int64 constant (1-D unless `dims` says otherwise). */
  constI(values: number[], dims?: number[]): string {
    const name = this.fresh('ci');
    this.claim(name);
    const arr = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({
      name,
      dataType: DT.INT64,
      dims: dims ?? [values.length],
      rawData: new Uint8Array(arr.buffer),
    });
    return name;
  }

  /** Add a node; returns its single output name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint?: string): string {
    return this.opN(opType, inputs, 1, attrs, hint)[0];
  }

  /** Add a node with `n` outputs. */
  opN(opType: string, inputs: string[], n: number, attrs: Record<string, AttrValue> = {}, hint?: string): string[] {
    return this.opIn('', opType, inputs, n, attrs, hint);
  }

  /**
   * Add a node of an operator domain other than ONNX's (version 1 of it is imported), e.g.
   * onnxruntime's contrib ops in 'com.microsoft'; `n` outputs.
   */
  opIn(domain: string, opType: string, inputs: string[], n: number, attrs: Record<string, AttrValue> = {}, hint?: string): string[] {
    const outs = Array.from({ length: n }, () => this.fresh(hint ?? opType.toLowerCase()));
    for (const o of outs) this.claim(o);
    if (domain !== '') this.domains.add(domain);
    this.nodes.push({
      opType,
      ...(domain !== '' ? { domain } : {}),
      input: inputs,
      output: outs,
      name: this.fresh(`n_${opType}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Serialise to ONNX ModelProto bytes. */
  toBytes(opset = DEFAULT_OPSET): Uint8Array {
    const model: onnx.IModelProto = {
      irVersion: 8,
      producerName: 'starq',
      opsetImport: [{ domain: '', version: opset }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))],
      graph: {
        name: this.name,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }

  private fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.used.has(name));
    return name;
  }

  private claim(name: string): void {
    if (this.used.has(name)) throw new Error(`graph ${this.name}: value name ${name} used twice`);
    this.used.add(name);
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use {float: x} for non-integers`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}
