"""GET /watches[/{name}], PUT and DELETE /watches/{name} (admin): a watch's vectors are built
here, where the text encoder is (prompts, negatives) and the history is (example frames' keyframe
embeddings), and the whole new `WatchSet` is published on `harclip.control` (key "watches") for
every worker and events app. On any error nothing is published: the previous watches stay."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, File, Path, Query, UploadFile
from pydantic import ValidationError

from api.auth import requires
from api.errors import error_responses
from api.gate import GatedRoute
from api.overload import bounded
from api.runtime import ClientsDep, ControlDep, PredictorDep, SettingsDep
from harclip.control import WATCHES_KEY, publish
from harclip.watches.spec import WatchSet, WatchSpec
from harclip.watches.vectors import WatchError, build_watch, with_watch, without_watch
from harclip.wire import ApiError
from harclip.wire.watches import WatchesDoc, WatchExample, WatchInfo, watch_info, watches_doc

router = APIRouter(tags=["watches"], route_class=GatedRoute)
log = logging.getLogger(__name__)

EXAMPLES_STREAM = "watch-examples"  # the history's stream of uploaded example images
NamePath = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="the watch's name")
]
_EXAMPLE = {"prompts": ["a person lying on the floor"], "negatives": ["a person standing"],
            "streams": ["lobby-*"], "window": 4, "false_alarms_per_hour": 0.5}  # fmt: skip


def _spec(name: str, body: dict[str, Any]) -> WatchSpec:
    """The body as a WatchSpec named `name` (422 `invalid_watch` naming the field)."""
    given = body.get("name", name)
    if given != name:
        raise ApiError(422, "invalid_watch", f"name: {given!r} differs from the path's {name!r}")
    try:
        return WatchSpec.model_validate({**body, "name": name})
    except ValidationError as e:
        parts = []
        for err in e.errors()[:5]:
            loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"])
            loc = loc.lstrip(".")
            loc = loc or ("prompts" if "prompt or example" in str(err.get("msg")) else "body")
            parts.append(f"{loc}: {err.get('msg')}")
        raise ApiError(422, "invalid_watch", "; ".join(parts)) from None


def _record(ws: WatchSet, max_bytes: int) -> bytes:
    """The control record of `ws`; 422 naming the limit when it is over Kafka's message size
    (each watch is about 10 bytes per vector component: ~15 KB at 512-d with two negatives)."""
    raw = ws.model_dump_json(by_alias=True).encode()
    if len(raw) > max_bytes:
        raise ApiError(
            422, "invalid_watch",
            f"watches: the set of {len(ws.watches)} watches would be a {len(raw)}-byte record, "
            f"over the control topic's {max_bytes} (HARCLIP_KAFKA__MAX_MESSAGE_BYTES): remove "
            "watches or raise the limit",
        )  # fmt: skip
    return raw


async def _examples(
    spec: WatchSpec, predictor: PredictorDep, clients: ClientsDep, settings: SettingsDep
) -> np.ndarray | None:
    """float32 [E, D]: the keyframe embedding of each example frame (404 naming an unknown)."""
    if not spec.examples:
        return None
    from harclip.io import search

    es = await clients.search_client()
    rows = []
    for i, frame_id in enumerate(spec.examples):
        found = await search.frame_embedding(es, settings.elasticsearch, predictor.space, frame_id)
        if found is None:
            raise ApiError(
                404, "not_found",
                f"examples[{i}]: frame {frame_id!r} is not in the history of model "
                f"{predictor.space.slug} (unknown, removed by retention, or made by another model)",
            )  # fmt: skip
        rows.append(found[1])
    return np.stack(rows)


@router.get(
    "/watches",
    response_model=WatchesDoc,
    summary="The watches in force",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 429),
)
async def list_watches(control: ControlDep) -> WatchesDoc:
    return watches_doc(control.watches.watch_set)


@router.post(
    "/watches/examples",
    response_model=WatchExample,
    dependencies=[Depends(requires("admin")), Depends(bounded)],
    summary="Upload an example image (admin): kept in the history, named by its frame id",
    responses=error_responses(401, 403, 413, 415, 422, 429, 503),
)
async def upload_example(
    file: Annotated[UploadFile, File(description="an image (same limits as /predict)")],
    predictor: PredictorDep,
    clients: ClientsDep,
    settings: SettingsDep,
) -> WatchExample:
    """Embeds the image with this API's model (as /predict: too large 413, not an image 415,
    corrupt 422) and indexes it as a keyframe of the stream `watch-examples`, visible at once;
    give the answered `frame_id` in a watch's `examples`. Retention removes it like any frame
    (a watch built from it keeps its vectors)."""
    from harclip.io import search
    from harclip.io.indices import predictions_index
    from harclip.messages import LabelScore, Latency, Prediction, new_frame_id, now_ms

    (scored,) = await predictor.predict([(file.filename or "file", await file.read())], 5)
    at = now_ms()
    pred = Prediction(
        frame_id=new_frame_id(at), stream_id=EXAMPLES_STREAM, seq=0, captured_at=at,
        inferred_at=at, label=scored.top_k[0][0], score=scored.top_k[0][1],
        top_k=[LabelScore(label=lb, score=sc) for lb, sc in scored.top_k], model=scored.model,
        latency_ms=Latency(queue=scored.queue_ms, infer=scored.infer_ms, total=0.0),
    )  # fmt: skip
    es = await clients.search_client()
    item = search.Indexed(pred, scored.embedding, pred.frame_id)
    await search.index_predictions(es, settings.elasticsearch, predictor.space, [item])
    await es.indices.refresh(index=predictions_index(settings.elasticsearch, predictor.space, at))
    log.info("example image %s kept as frame %s", file.filename, pred.frame_id)
    return WatchExample(frame_id=pred.frame_id, stream_id=EXAMPLES_STREAM)


@router.get(
    "/watches/{name}",
    response_model=WatchInfo,
    summary="One watch in force",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 404, 422, 429),
)
async def get_watch(name: NamePath, control: ControlDep) -> WatchInfo:
    info = watch_info(control.watches.watch_set, name)
    if info is None:
        raise ApiError(404, "not_found", f"no watch named {name!r}")
    return info


@router.put(
    "/watches/{name}",
    response_model=WatchInfo,
    summary="Add or replace a watch (admin)",
    dependencies=[Depends(requires("admin"))],
    responses=error_responses(401, 403, 404, 409, 422, 429, 503),
)
async def put_watch(
    name: NamePath,
    body: Annotated[dict[str, Any], Body(description="a WatchSpec", examples=[_EXAMPLE])],
    predictor: PredictorDep,
    clients: ClientsDep,
    control: ControlDep,
    settings: SettingsDep,
    create: Annotated[
        bool, Query(description="refuse (409) if a watch of this name is in force")
    ] = False,
) -> WatchInfo:
    """The body is a WatchSpec (its `name` may be left out; if given it must be the path's).
    Builds the watch's vectors and publishes the whole set: 422 `invalid_watch` naming the field,
    404 naming an unknown example frame; the previous watches stay on any error."""
    spec = _spec(name, body)
    async with control.watches_lock:
        current = control.watches.watch_set
        if create and watch_info(current, name) is not None:
            raise ApiError(409, "conflict", f"name: a watch named {name!r} is in force")
        examples = await _examples(spec, predictor, clients, settings)
        encoder = await predictor.text_encoder()
        try:
            watch = await asyncio.to_thread(
                build_watch, spec, encoder, examples, embed_dim=current.embed_dim
            )
            new = with_watch(current, watch)
        except WatchError as e:
            raise ApiError(e.status, "invalid_watch", str(e)) from None
        if new is not current:
            raw = _record(new, settings.kafka.max_message_bytes)
            await publish(await clients.producer(), settings.kafka, WATCHES_KEY, raw)
            control.watches.offer(new)
            log.info("watch %r published (watches v%d: %d)", name, new.version, len(new.watches))
    info = watch_info(new, name)
    assert info is not None
    return info


@router.delete(
    "/watches/{name}",
    response_model=WatchesDoc,
    summary="Remove a watch (admin)",
    dependencies=[Depends(requires("admin"))],
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def delete_watch(
    name: NamePath, clients: ClientsDep, control: ControlDep, settings: SettingsDep
) -> WatchesDoc:
    """Publishes the set without the watch; answers the set that is now in force."""
    async with control.watches_lock:
        try:
            new = without_watch(control.watches.watch_set, name)
        except WatchError as e:
            raise ApiError(404, "not_found", f"no watch named {name!r}") from e
        raw = _record(new, settings.kafka.max_message_bytes)
        await publish(await clients.producer(), settings.kafka, WATCHES_KEY, raw)
        control.watches.offer(new)
    log.info("watch %r removed (watches v%d: %d)", name, new.version, len(new.watches))
    return watches_doc(new)
