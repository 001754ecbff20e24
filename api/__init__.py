"""The harclip HTTP and WebSocket API (FastAPI): `python -m api --bundle B`."""
