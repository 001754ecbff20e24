"""Evaluation parts: predictions of a model or a bundle over a split (`predict`), the metrics
(`metrics`) and the written report (`report`)."""
