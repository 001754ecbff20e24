"""The torch side of harclip: load a CLIP (hub id or folder), write a random one, export bundles
and validate their engines.

Everything here imports torch and transformers lazily or at module level of its own submodules;
nothing outside `harclip.clip` (and training) imports these submodules at import time.
"""
