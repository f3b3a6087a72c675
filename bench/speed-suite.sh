#!/usr/bin/env bash
# The speed figures of docs/BENCHMARKS.md ("Speed: Global vs Star vs Ring"): the issue's grid on
# the bench shape (hidden 256, 4 layers, 8 heads, 2 KV heads; a random model generated with enough
# positions for 64K), in-process (2 hosts × 1 thread, Global 1 × 2 threads) and on 2 host processes
# on Redis. Writes JSON, Markdown tables and SVG plots into docs/speed/ (or $OUT).
# Takes about an hour on a 2-core machine; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/speed}
CONTEXTS=${CONTEXTS:-4K,16K,64K}
mkdir -p "$OUT"
COMMON=(--random-model hidden=256,layers=4,heads=8,kv-heads=2 --contexts "$CONTEXTS" --modes global,star,ring
        --block-sizes 1/4,1/8,1/16 --hosts 2 --threads 2 --query-tokens 16 --new-tokens 32 --markdown)
node bin/starq bench speed "${COMMON[@]}" --json "$OUT/in-process.json" --plots "$OUT/in-process" | tee "$OUT/in-process.md"
node bin/starq bench speed "${COMMON[@]}" --cluster --json "$OUT/cluster.json" --plots "$OUT/cluster" | tee "$OUT/cluster.md"
