"""Clients of the services harclip runs on: Kafka (`kafka`), Redis as the live store (`store`) and
Elasticsearch as history and vector search (`search`), and the one mapping of their failures to
harclip's retry-or-refuse errors."""
