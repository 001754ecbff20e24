"""The torch side of harclip: load a CLIP (hub id or folder), write a random one, export bundles.

Everything here imports torch and transformers lazily or at module level of its own submodules;
nothing outside `harclip.model` imports these submodules at import time.
"""
