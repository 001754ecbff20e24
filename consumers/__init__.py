"""The inference worker: Kafka frames and uploads -> micro-batched engine + head -> Predictions
on Kafka, Redis and Elasticsearch, offsets committed after every sink acknowledged.
`python -m consumers`."""
