#!/usr/bin/env bash
# The GPU checks in one prepared run (< 5 min on an H100/H200 class GPU), from the repository root:
#   bash bench/gpu_check.sh [OUT_DIR]
# 1. the CUDA tests of the GPU hot path and the torch engines (they skip only without CUDA);
# 2. python -m bench.gpu: engines model-only at batch 1-128, then JPEG bytes -> top-k end to end
#    (nvJPEG + resize on the GPU, torch fp16 with CUDA graphs) against CPU decode + GPU model.
# Needs python3 with torch (CUDA build), torchvision, transformers, onnxruntime, opencv and the
# harclip dependencies (or PYTHONPATH to wheels carried next to it, as docs/benchmarks.md says);
# HARCLIP_SAMPLE_DATA should point at a folder with har-sample/ (30 photos are enough).
set -uo pipefail
out="${1:-${OUT:-state/gpu-out}}"
mkdir -p "$out"
py="${PYTHON:-python3}"
"$py" - <<'EOF' 2>&1 | tee "$out/env.txt"
import torch, torchvision, onnxruntime
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("torchvision", torchvision.__version__, "onnxruntime", onnxruntime.__version__,
      onnxruntime.get_available_providers())
EOF
timeout 120 "$py" -m pytest -q -p no:cacheprovider \
  tests/unit/harclip/engines/test_gpu_path.py \
  "tests/unit/harclip/engines/test_bundle_engines.py::test_torch_on_cuda" \
  tests/unit/harclip/engines/test_auto.py 2>&1 | tail -25 | tee "$out/tests.txt"
timeout 270 "$py" -m bench.gpu --device cuda --seconds 1.5 --json-out "$out/gpu.json" \
  2>"$out/gpu.err" | tee "$out/gpu.txt"
tail -5 "$out/gpu.err"
