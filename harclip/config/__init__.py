"""harclip's settings: `Settings` (settings.py: the whole, read from `HARCLIP_*` once, and
`to_env()` back) made of frozen sections (base.py: `_Section`), one module per group: kafka.py,
stores.py (Redis, Elasticsearch, object store), model.py (model, batching), api.py (API, auth),
apps.py (events app, UI), services.py (metrics, local services). Import them from here."""

from harclip.config.api import ApiSettings, AuthSettings, KeyGrant, Role
from harclip.config.apps import StreamSettings, UiSettings
from harclip.config.kafka import KafkaSettings, Topics
from harclip.config.model import BatchingSettings, EngineChoice, EngineName, ModelSettings
from harclip.config.services import MetricsSettings, ServicesSettings
from harclip.config.settings import Settings, child_environ, load_settings
from harclip.config.stores import ElasticsearchSettings, ObjectStoreSettings, RedisSettings

__all__ = [
    "ApiSettings",
    "AuthSettings",
    "BatchingSettings",
    "ElasticsearchSettings",
    "EngineChoice",
    "EngineName",
    "KafkaSettings",
    "KeyGrant",
    "MetricsSettings",
    "ModelSettings",
    "ObjectStoreSettings",
    "RedisSettings",
    "Role",
    "ServicesSettings",
    "Settings",
    "StreamSettings",
    "Topics",
    "UiSettings",
    "child_environ",
    "load_settings",
]
