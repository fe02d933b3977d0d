#!/usr/bin/env bash
# On the CUDA machine (device tool), from the repository root, after benchmarks/gpu/prepare.sh ran on the build machine:
#   bash benchmarks/gpu/run.sh        (writes results-*.json and summary.txt to $OUT)
# PyTorch functional and transformers are measured in the same call as TokenEmbed, on the same token ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
work=$(mktemp -d)
TORCH_LIB=$(python3 -c "import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'lib'))")
mkdir -p /tmp/dn && tar -C /tmp/dn -xJf "$here/out/dotnet-runtime.tar.xz"
export DOTNET_ROOT=/tmp/dn DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 TOKENEMBED_TORCH_LIB="$TORCH_LIB" LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 "$here/peer.py" make "$work"
/tmp/dn/dotnet "$here/out/app/TokenEmbed.GpuBench.dll" "$work" "$OUT" 2>&1 | tee "$OUT/dotnet.log"
python3 "$here/peer.py" bench "$work" "$OUT" 2>&1 | tee "$OUT/python.log"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, sys, os
out = sys.argv[1]
rows = json.load(open(os.path.join(out, "results-dotnet.json"))) + json.load(open(os.path.join(out, "results-python.json")))
def tps(e, m, d, w): return next((r["tokens_per_s"] for r in rows if r.get("engine") == e and r.get("model") == m and r.get("dtype") == d and r.get("workload") == w), None)
for m in ("minilm", "bert-base"):
    for d in ("float16", "bfloat16"):
        for w in ("fixed", "corpus"):
            ours = tps("tokenembed", m, d, w)
            for peer in ("pytorch-functional", "transformers-sdpa"):
                theirs = tps(peer, m, d, w)
                if ours and theirs: print(f"{m} {d} {w}: TokenEmbed / {peer} = {ours / theirs:.2f}")
PY
