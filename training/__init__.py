"""harclip's training deployable: data → zero-shot evaluation → fine-tuning (one process, DDP or
FSDP) → evaluation report → export to a bundle → registry / hub (`python -m training ...`).

It imports `harclip` only; torch, transformers and the tracking libraries are imported by the
commands that need them, so `python -m training --help` stays fast.
"""
