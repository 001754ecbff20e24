"""The model-fetch init container of every worker and API pod (k8s/base, docs/deploy.md "Models").

Downloads MODEL_URI (an MLflow registry version such as models:/harclip-har/3, or any URI
`mlflow.artifacts.download_artifacts` understands) into the pod's emptyDir, verifies the bundle
(`Bundle.load`: the manifest and every file it names), and only then moves it to
HARCLIP_MODEL__BUNDLE, so the serving container never sees a partial or broken bundle. Exits
non-zero with one line naming what failed; the pod then stays in Init and is retried.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def main() -> int:
    uri = os.environ.get("MODEL_URI", "").strip()
    dest = Path(os.environ.get("HARCLIP_MODEL__BUNDLE", "/models/current"))
    if not uri:
        print("model-fetch: MODEL_URI is not set (the harclip-model ConfigMap)", file=sys.stderr)
        return 2
    import mlflow.artifacts

    from harclip.errors import ModelError
    from harclip.model.bundle import MANIFEST, Bundle

    staging = dest.parent / ".download"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging)))
    except Exception as e:  # MLflow raises many types (network, auth, not found)
        print(f"model-fetch: cannot download {uri}: {e}", file=sys.stderr)
        return 1
    # a registry version's files, or the `bundle` folder a run logged (python -m training register)
    root = next((p for p in (got, got / "bundle") if (p / MANIFEST).is_file()), None)
    if root is None:
        print(f"model-fetch: {uri} holds no {MANIFEST}", file=sys.stderr)
        return 1
    try:
        bundle = Bundle.load(root)
    except ModelError as e:
        print(f"model-fetch: {uri} is not a valid bundle: {e}", file=sys.stderr)
        return 1
    shutil.rmtree(dest, ignore_errors=True)
    root.rename(dest)
    shutil.rmtree(staging, ignore_errors=True)  # what the download left beside the bundle
    (dest / "SOURCE").write_text(uri + "\n")
    m = bundle.manifest
    print(f"model-fetch: {uri} -> {dest} ({m.name} {m.version}, base {m.base_model})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
