"""What the API holds while it runs, one object per concern: the `Predictor` (engine, head,
micro-batcher, decode pool), the `Clients` (Redis, Elasticsearch, Kafka producer, URL fetcher,
each opened on first use), the `Control` follower (head, rules and watches records), the
authenticator and the metrics. `create_app` builds the `Runtime`; the app's lifespan starts and
closes it; each route takes only the parts it needs as FastAPI dependencies (`PredictorDep`,
`ClientsDep`, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from api.auth import Authenticator
from api.clients import Clients
from api.control import Control
from api.metrics import ApiMetrics
from api.overload import ConcurrencyLimit
from api.predictor import Predictor, space_of
from harclip.config import Settings
from harclip.watches.holder import WatchHolder

if TYPE_CHECKING:
    from harclip.model.bundle import Bundle


class Runtime:
    """The API's long-lived parts. `start()` loads the engine and follows the control topic;
    clients connect lazily; `close()` closes everything in reverse."""

    def __init__(self, settings: Settings, bundle: Bundle) -> None:
        self.settings = settings
        self.metrics = ApiMetrics()
        self.auth = Authenticator(settings.auth)
        self.predicts = ConcurrencyLimit(settings.api.max_concurrent_predicts)
        self.predictor = Predictor(settings, bundle, self.metrics)
        self.clients = Clients(settings, space_of(bundle), self.metrics)
        head = self.predictor.heads.head
        watches = WatchHolder(head.embed_dim, head.logit_scale, self.metrics.control)
        self.control = Control(settings, self.predictor.heads, watches, self.predictor.adapters)

    async def start(self) -> None:
        await self.predictor.start()
        self.clients.open_fetcher()
        await self.control.start()

    async def close(self) -> None:
        await self.control.close()
        await self.predictor.close()
        await self.clients.close_producer()
        await self.clients.close()
        self.predictor.close_engine()


# The dependencies below are `async def` on purpose: FastAPI runs a plain `def` dependency in its
# thread pool, one thread hand-off per dependency per request (two or three on /predict) for an
# attribute read.


def _runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.app.state.runtime
    return rt


async def get_settings(conn: HTTPConnection) -> Settings:
    """The app's settings (HTTP or WebSocket route)."""
    return _runtime(conn).settings


async def get_predictor(conn: HTTPConnection) -> Predictor:
    return _runtime(conn).predictor


async def get_clients(conn: HTTPConnection) -> Clients:
    return _runtime(conn).clients


async def get_control(conn: HTTPConnection) -> Control:
    return _runtime(conn).control


async def get_auth(conn: HTTPConnection) -> Authenticator:
    return _runtime(conn).auth


async def get_metrics(conn: HTTPConnection) -> ApiMetrics:
    return _runtime(conn).metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
ClientsDep = Annotated[Clients, Depends(get_clients)]
ControlDep = Annotated[Control, Depends(get_control)]
AuthDep = Annotated[Authenticator, Depends(get_auth)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
