"""The model path without torch: the bundle on disk, image decoding and preprocessing, the head
(labels, logits) and the ONNX text encoder that builds new heads."""
