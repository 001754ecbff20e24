"""The feedback cache adapter (docs/feedback.md "Adapter"): built from the feedback index
(`build`), gated against the adapter in force (`gate`), published on `harclip.control` under
`adapter` and applied after the head by every worker and API replica (`holder`)."""
