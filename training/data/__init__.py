"""Training data: sources (image folder, CSV, Hugging Face dataset) → a verified, stratified,
seeded split written as a manifest (files, labels, hashes) → augmented uint8 batches on the same
decode/resize path the engines use."""
