"""The app object `faust -A stream.app worker` runs, built from the `HARCLIP_*` settings."""

from __future__ import annotations

import sys

from harclip.config import load_settings
from harclip.errors import HarclipError
from stream.application import StreamApp, create_app

try:
    app: StreamApp = create_app(load_settings())
except HarclipError as _e:
    sys.exit(f"stream.app: error: {_e}")
