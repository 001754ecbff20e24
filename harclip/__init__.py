"""harclip: real-time human-action recognition with CLIP on Kafka, Redis and Elasticsearch."""

__version__ = "0.1.0"
