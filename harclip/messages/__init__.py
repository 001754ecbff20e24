"""The messages that cross component boundaries, shared by producers, workers, the events app
and the API: `Frame` (frame.py: Kafka headers + image bytes), `Prediction` (prediction.py) and
`Event` with the events app's per-stream documents (event.py); the JSON ones share one codec
(base.py: `Message`). Import them from here."""

from harclip.messages.base import Message, Part
from harclip.messages.event import (
    DEPLOYMENT_STREAM,
    EVENT_SCHEMA,
    EVENT_TYPES,
    AdapterChange,
    Event,
    EventType,
    Evidence,
    EvidenceMissing,
    PromotionReason,
    Severity,
    StreamAction,
    StreamStats,
    WindowStats,
    action_of,
    event_id,
    promotion_event_id,
)
from harclip.messages.feedback import FEEDBACK_SCHEMA, Feedback, Target, Verdict
from harclip.messages.frame import (
    FRAME_SCHEMA,
    Frame,
    Headers,
    header_value,
    new_frame_id,
    now_ms,
)
from harclip.messages.prediction import (
    PREDICTION_SCHEMA,
    LabelScore,
    Latency,
    ModelRef,
    Prediction,
)

__all__ = [
    "DEPLOYMENT_STREAM",
    "EVENT_SCHEMA",
    "EVENT_TYPES",
    "FEEDBACK_SCHEMA",
    "FRAME_SCHEMA",
    "PREDICTION_SCHEMA",
    "AdapterChange",
    "Event",
    "EventType",
    "Evidence",
    "EvidenceMissing",
    "Feedback",
    "Frame",
    "Headers",
    "LabelScore",
    "Latency",
    "Message",
    "ModelRef",
    "Part",
    "Prediction",
    "PromotionReason",
    "Severity",
    "StreamAction",
    "StreamStats",
    "Target",
    "Verdict",
    "WindowStats",
    "action_of",
    "event_id",
    "header_value",
    "new_frame_id",
    "now_ms",
    "promotion_event_id",
]
