#!/usr/bin/env bash
# The exact generator on a CUDA device, for a lent GPU machine (docs/performance.md, "GPU").
# Needs, in .whl/, the wheels that machine lacks (built here with a network):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 -d .whl cholespy==2.2.0 global-land-mask==1.0.0
# Run from the repository root: OUT=<folder> bash benchmarks/gpu_generator_check.sh
# Writes $OUT/bench_cuda.txt (exact and randomization on CUDA against the CPU, per sample) and
# $OUT/generate_cuda.txt (a 12-sample global data set generated on the device, wall time).
set -euo pipefail
OUT=${OUT:?set OUT to the folder for the results}
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --upgrade --no-index --no-deps --target "$HOME/site" .whl/*.whl
fi
export PYTHONPATH="$HOME/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
python3 benchmarks/bench_normalization.py --device "$DEVICE" --measured-samples 256 \
    > "$OUT/bench_$DEVICE.txt" 2>&1
python3 - "$OUT" "$DEVICE" > "$OUT/generate_$DEVICE.txt" 2>&1 <<'PY'
import sys, time
from pathlib import Path
from normcoef.data.generation import GenerationSpec, generate_dataset
out, device = Path(sys.argv[1]), sys.argv[2]
spec = GenerationSpec(grid="global", height=292, width=360, tolerance=2e-6,
                      splits={"train": 10, "valid": 1, "test": 1})
start = time.perf_counter()
generate_dataset(out / "global", spec, progress=False, workers=1, device=device)
seconds = time.perf_counter() - start
print(f"12 global samples on {device}, one process: {seconds:.0f} s ({seconds / 12:.1f} s each)")
PY
rm -rf "$OUT/global"
cat "$OUT"/*.txt
