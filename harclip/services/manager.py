"""Run the local services together: build them from settings, bring them up in parallel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from harclip.config import Settings
from harclip.errors import HarclipError, ServiceError
from harclip.services import elasticsearch, kafka, objects, redis
from harclip.services.base import Service, Status
from harclip.services.elasticsearch import ElasticsearchService
from harclip.services.kafka import KafkaService
from harclip.services.objects import ObjectStoreService
from harclip.services.redis import RedisService

NAMES = ("kafka", "elasticsearch", "redis", "objects")


def build(settings: Settings, names: Sequence[str] = ()) -> list[Service]:
    """The services named (all of them when `names` is empty), in a fixed order."""
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ServiceError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    s = settings.services
    every: dict[str, Callable[[], Service]] = {
        "kafka": lambda: KafkaService(settings.kafka, s),
        "elasticsearch": lambda: ElasticsearchService(settings.elasticsearch, s),
        "redis": lambda: RedisService(settings.redis, s),
        "objects": lambda: ObjectStoreService(settings.objects, s),
    }
    return [every[n]() for n in NAMES if not names or n in names]


class ServicesFailed(ServiceError):
    """One or more services failed; `statuses` holds those that succeeded."""

    def __init__(self, message: str, statuses: list[Status]) -> None:
        super().__init__(message)
        self.statuses = statuses


def _each(services: Sequence[Service], step: Callable[[Service], Status]) -> list[Status]:
    """Run `step` on every service at once; raise one `ServicesFailed` listing all failures."""
    with ThreadPoolExecutor(max_workers=len(services) or 1) as pool:
        futures = [(svc, pool.submit(step, svc)) for svc in services]
    results: list[Status] = []
    errors: list[str] = []
    for svc, fut in futures:
        try:
            results.append(fut.result())
        except HarclipError as e:
            msg = str(e)
            errors.append(msg if msg.lower().startswith(svc.name) else f"{svc.name}: {msg}")
    if errors:
        fine = [f"{r.name} {r.state.value}" for r in results]
        others = f"\n(others: {', '.join(fine)})" if fine else ""
        raise ServicesFailed("\n".join(errors) + others, results)
    return results


def up(services: Sequence[Service]) -> list[Status]:
    """Start (in parallel) every service that is not running and wait until all answer."""
    return _each(services, lambda s: s.up())


def down(services: Sequence[Service]) -> list[Status]:
    """Stop (in parallel) what earlier `up`s started, and wait until the processes exited."""
    return _each(services, lambda s: s.down())


def status(services: Sequence[Service]) -> list[Status]:
    return _each(services, lambda s: s.status())


def not_answering(settings: Settings) -> list[str]:
    """Names of the services (at the configured addresses) that do not answer, whoever runs
    them: `harclip services up`, docker compose or a real cluster. Checked in parallel."""
    checks: dict[str, Callable[[], bool]] = {
        "kafka": lambda: kafka.answers(settings.kafka),
        "elasticsearch": lambda: elasticsearch.answers(settings.elasticsearch),
        "redis": lambda: redis.answers(settings.redis),
        "objects": lambda: objects.answers(settings.objects),
    }
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(check) for name, check in checks.items()}
    return [name for name, fut in futures.items() if not fut.result()]
