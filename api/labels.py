"""GET /labels and PUT /labels: a new label set becomes a new zero-shot head, built with the
bundle's ONNX text encoder (no torch), published on `harclip.control` (key "head") for every
worker and used by this API from its next batch."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends

from api.auth import requires
from api.errors import error_responses
from api.gate import GatedRoute
from api.runtime import ClientsDep, PredictorDep, SettingsDep
from harclip.control import HEAD_KEY, HeadHolder, publish
from harclip.errors import MessageError
from harclip.labels import prompts_for
from harclip.model.head import next_version
from harclip.wire import ApiError, LabelSet, LabelSetRequest

router = APIRouter(tags=["labels"], route_class=GatedRoute)
log = logging.getLogger(__name__)


def _describe(heads: HeadHolder) -> LabelSet:
    h = heads.head
    return LabelSet(version=h.version, kind=h.kind, labels=list(h.labels), prompts=dict(h.prompts))


@router.get(
    "/labels",
    response_model=LabelSet,
    summary="The label set in use",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 429),
)
async def get_labels(predictor: PredictorDep) -> LabelSet:
    return _describe(predictor.heads)


@router.put(
    "/labels",
    response_model=LabelSet,
    summary="Replace the label set (admin)",
    dependencies=[Depends(requires("admin"))],
    responses=error_responses(401, 403, 422, 429, 503),
)
async def put_labels(
    body: LabelSetRequest, predictor: PredictorDep, clients: ClientsDep, settings: SettingsDep
) -> LabelSet:
    """Builds a zero-shot head for the labels (a name without prompts gets the default prompt
    ensemble), publishes it to the workers and returns it with its new version."""
    from harclip.model.relabel import validate_label_set
    from harclip.model.text import build_head

    given = {name.strip(): p for name, p in body.prompts.items()}  # " fight " is "fight"
    if len(given) != len(body.prompts):
        raise ApiError(422, "invalid_labels", "prompts are given twice for one label")
    unknown = set(given) - {name.strip() for name in body.labels}
    if unknown:
        raise ApiError(
            422, "invalid_labels", f"prompts given for unknown labels: {', '.join(sorted(unknown))}"
        )
    try:
        label_set = validate_label_set(
            {name: given.get(name.strip()) or prompts_for(name.strip()) for name in body.labels}
        )
    except MessageError as e:
        raise ApiError(422, "invalid_labels", str(e)) from None
    if len(label_set) != len(body.labels):
        raise ApiError(422, "invalid_labels", "label names must be unique")
    encoder = await predictor.text_encoder()
    current = predictor.heads.head
    head = await asyncio.to_thread(
        build_head,
        encoder,
        label_set,
        logit_scale=current.logit_scale,
        version=next_version(current.version),  # unique across replicas; the largest wins
    )
    await publish(await clients.producer(), settings.kafka, HEAD_KEY, head.to_control())
    predictor.heads.offer(head)
    log.info("label set v%d published: %s", head.version, ", ".join(head.labels))
    return _describe(predictor.heads)
