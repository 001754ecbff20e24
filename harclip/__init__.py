"""harclip: real-time human-action recognition with CLIP on Kafka, Redis and Elasticsearch."""

import os as _os

__version__ = "0.1.0"

# OpenCV's decoders refuse an image over this many pixels themselves, before allocating it, so a
# file whose header harclip reads one way and libjpeg/libpng another cannot cost gigabytes. OpenCV
# reads the variable once, when cv2 is first imported: every harclip process imports this package
# first. `HARCLIP_MODEL__MAX_PIXELS` (default 40 M) is the limit people set; this is the ceiling.
DECODER_MAX_PIXELS = 1 << 26  # 67,108,864 pixels, 8192 × 8192
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DECODER_MAX_PIXELS))
