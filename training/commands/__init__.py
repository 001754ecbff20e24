"""One module per `python -m training COMMAND` (what `training.cli` dispatches to): `zeroshot`,
`finetune`, `evaluate`, `export`, `register` and `push`; `prepare` is `training.data.prepare`.
The commands use the parts in `training.data`, `training.model`, `training.fit` and
`training.evaluation`; no part imports a command."""
