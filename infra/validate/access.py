"""Who may do what, as a cluster would enforce it: Kafka clients authenticate as their own
KafkaUser and only the API's user writes harclip.control; KEDA logs in too; the API stays
ready while a single Redis restarts. Part of the `cluster` check (infra.validate.cluster)."""

from __future__ import annotations

from typing import Any

from infra.validate.workloads import by_kind, component_of, container_env, load_settings, where

Doc = dict[str, Any]
KAFKA_COMPONENTS = ("worker", "api", "stream")  # the deployables with Kafka clients
CONTROL_WRITER = "api"  # the one component whose user may write harclip.control
WRITES = {"Write", "All"}


def kafka_auth(docs: list[Doc]) -> list[str]:
    """With a Kafka in the build: every listener authenticates, Kafka authorizes, each
    deployable logs in as a KafkaUser of the build, only the API's user may write the control
    topic, and KEDA's Kafka triggers log in."""
    kafkas = list(by_kind(docs, "Kafka"))
    if not kafkas:
        return []
    problems: list[str] = []
    for kafka in kafkas:
        spec = kafka["spec"]["kafka"]
        for listener in spec.get("listeners", []):
            if not listener.get("authentication"):
                problems.append(
                    f"{where(kafka)}: listener {listener['name']} has no authentication: any "
                    "pod that reaches it may write heads and rules to the control topic"
                )
        if spec.get("authorization", {}).get("type") != "simple":
            problems.append(f"{where(kafka)}: no `authorization: simple` (ACLs are not enforced)")
    users = {d["metadata"]["name"]: d for d in by_kind(docs, "KafkaUser")}
    user_of: dict[str, str] = {}
    control = "harclip.control"
    for d in by_kind(docs, "Deployment"):
        component = component_of(d)
        if component not in KAFKA_COMPONENTS:
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            env, _ = container_env(docs, c)
            settings = load_settings(env)
            if isinstance(settings, list):
                continue  # reported by workload_settings
            k = settings.kafka
            if not k.security_protocol.startswith("SASL") and not k.ssl_certfile:
                problems.append(f"{where(d)}: container {c['name']} talks to Kafka unauthenticated")
            elif k.username not in users and not k.ssl_certfile:
                problems.append(
                    f"{where(d)}: container {c['name']} logs in to Kafka as {k.username!r}, "
                    "not a KafkaUser of the build"
                )
            else:
                user_of[k.username] = str(component)
            control = k.topics.control
    problems += _control_writers(users, user_of, control)
    problems += _keda_login(docs)
    return sorted(set(problems))


def _matches(resource: Doc, topic: str) -> bool:
    name = str(resource.get("name", ""))
    if resource.get("patternType") == "prefix":
        return topic.startswith(name)
    return name in (topic, "*")


def _control_writers(users: dict[str, Doc], user_of: dict[str, str], control: str) -> list[str]:
    problems: list[str] = []
    for name, user in users.items():
        acls = user["spec"].get("authorization", {}).get("acls", [])
        writes = any(
            acl["resource"].get("type") == "topic"
            and _matches(acl["resource"], control)
            and WRITES & set(acl.get("operations", []))
            and acl.get("type", "allow") == "allow"
            for acl in acls
        )
        if writes and user_of.get(name) != CONTROL_WRITER:
            problems.append(
                f"KafkaUser/{name}: may write {control}; only the API's user may (heads and "
                "rules pass the API's admin check)"
            )
    return problems


def _keda_login(docs: list[Doc]) -> list[str]:
    auths = {d["metadata"]["name"] for d in by_kind(docs, "TriggerAuthentication")}
    problems: list[str] = []
    for so in by_kind(docs, "ScaledObject"):
        for t in so["spec"].get("triggers", []):
            if t.get("type") != "kafka":
                continue
            ref = t.get("authenticationRef", {}).get("name")
            if ref not in auths:
                problems.append(
                    f"{where(so)}: trigger {t.get('name')} has no TriggerAuthentication of the "
                    "build: KEDA cannot log in to read the lag"
                )
    return problems


def api_readiness(docs: list[Doc]) -> list[str]:
    """An API whose readiness requires a Redis that runs as one replica goes unready everywhere
    while that pod restarts: require only the model there (HARCLIP_API__READY_REQUIRES)."""
    single_redis = any(
        d["metadata"]["name"].endswith("redis") and d["spec"].get("replicas", 1) == 1
        for d in docs
        if d.get("kind") in ("StatefulSet", "Deployment")
    )
    problems: list[str] = []
    for d in by_kind(docs, "Deployment"):
        if component_of(d) != "api" or not single_redis:
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            settings = load_settings(container_env(docs, c)[0])
            if not isinstance(settings, list) and "redis" in settings.api.ready_requires:
                problems.append(
                    f"{where(d)}: readiness requires a single-replica Redis: every API replica "
                    "leaves the Service while it restarts (HARCLIP_API__READY_REQUIRES)"
                )
    return problems


def redis_passwords(docs: list[Doc]) -> list[str]:
    """A Redis password goes in HARCLIP_REDIS__PASSWORD, not in the URL (which shows up in logs
    and error messages)."""
    problems: list[str] = []
    for d in by_kind(docs, "Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            url = container_env(docs, c)[0].get("HARCLIP_REDIS__URL", "")
            if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
                problems.append(
                    f"{where(d)}: container {c['name']}: HARCLIP_REDIS__URL carries a password; "
                    "set HARCLIP_REDIS__PASSWORD"
                )
    return problems
