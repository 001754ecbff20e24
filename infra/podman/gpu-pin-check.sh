#!/usr/bin/env bash
# The GPU worker's pin, checked where its CUDA base image cannot be pulled: install
# onnxruntime-gpu and its few runtime dependencies exactly as infra/docker/worker-gpu.lock pins
# them (hashes required) into a throwaway venv, then run worker-gpu.Dockerfile's smoke step
# (import it, list the providers, fail unless CUDAExecutionProvider is offered: the listing needs
# no GPU). `make gpu-pin-check`; docs/deploy.md, "Containers".
set -euo pipefail
lock=${1:-infra/docker/worker-gpu.lock}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the lock's blocks of these packages (a block: the `name==version \` line and its hash lines)
python3 - "$lock" > "$work/req.txt" <<'PY'
import re, sys
want = {"onnxruntime-gpu", "numpy", "flatbuffers", "packaging", "protobuf"}
keep = False
for line in open(sys.argv[1]):
    m = re.match(r"([A-Za-z0-9._-]+)==", line)
    if m:
        keep = m.group(1).lower() in want
    if keep and (m or line.startswith("    --hash")):
        print(line, end="")
PY
grep -q '^onnxruntime-gpu==' "$work/req.txt" || { echo "no onnxruntime-gpu pin in $lock" >&2; exit 1; }
uv venv -q --python 3.11 "$work/venv"
uv pip install -q --python "$work/venv/bin/python" --require-hashes --no-deps -r "$work/req.txt"
"$work/venv/bin/python" -c "import onnxruntime as ort; p = ort.get_available_providers(); \
print('onnxruntime-gpu', ort.__version__, p); assert 'CUDAExecutionProvider' in p, p"
