"""The fine-tuning loop and what it runs on: processes and devices (`distributed`), optimizer and
schedule (`optim`), checkpoints and resuming (`checkpoint`, `resume`), tracking (`tracking`),
the loop itself (`loop`) and the steps after it (`finish`)."""
