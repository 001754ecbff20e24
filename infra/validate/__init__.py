"""Offline validation of harclip's deployment files: Kubernetes manifests, Prometheus rules,
Grafana dashboards, Kibana saved objects, Dockerfiles, the compose file and the CI workflows.

`python -m infra.validate [--root DIR] [--only NAME ...]` (or `make validate`); every check
returns a list of problems, and any problem fails the run. docs/deploy.md lists the checks.
"""
