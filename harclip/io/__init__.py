"""Clients of the services harclip runs on: Kafka (`kafka`, `topics`), Redis as the live store
(`keys` names every key; `store`: predictions, the client and its error mapping; `events`: the
events app's outputs), Elasticsearch as history and vector search (`search`, `indices`), an S3
object store for evidence (`objects`; its keys in `keys`), and the one mapping of their failures
to harclip's retry-or-refuse errors (`errors`)."""
