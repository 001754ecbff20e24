"""Local Kafka, Redis and Elasticsearch for tests and the one-machine demo.

`harclip services up|down|status` fetches the servers from package registries (Maven Central,
Debian), keeps downloads in a cache and data/logs under the state folder, and starts them on the
addresses that `Settings` names. See docs/services.md.
"""
