"""Producers: camera (webcam, RTSP/HTTP, video file), upload (files, folders, videos) and
synthetic (load tests) sources of JPEG frames into Kafka. `python -m producers ...`."""
