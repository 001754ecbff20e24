"""POST /predict (base64 or URL) and POST /predict/image (multipart, one or many files) on the
in-process engine; concurrent requests share micro-batches."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile

from api.auth import requires
from api.errors import error_responses
from api.gate import GatedRoute
from api.overload import bounded
from api.predictor import Scored
from api.runtime import ClientsDep, PredictorDep, SettingsDep
from harclip.wire import (
    ApiError,
    LabelScore,
    PredictLatency,
    PredictManyResponse,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(
    tags=["predict"],
    dependencies=[Depends(requires("predict")), Depends(bounded)],
    route_class=GatedRoute,
)


_INLINE_BASE64 = 256 * 1024  # characters of base64 decoded on the event loop (~0.1 ms here)


def _b64(text: str) -> bytes:
    if text.startswith("data:"):
        _, sep, text = text.partition(",")
        if not sep:
            raise ApiError(422, "invalid_base64", "data URL without a ',' before the data")
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_base64", "'image' is not valid base64") from None


def _response(s: Scored, start: float, filename: str | None) -> PredictResponse:
    label, score = s.top_k[0]
    return PredictResponse(
        label=label,
        score=score,
        predictions=[LabelScore(label=lb, score=sc) for lb, sc in s.top_k],
        model=s.model,
        latency_ms=PredictLatency(
            decode=round(s.decode_ms, 3),
            queue=round(s.queue_ms, 3),
            infer=round(s.infer_ms, 3),
            total=round((time.perf_counter() - start) * 1000, 3),
        ),
        filename=filename,
    )


@router.post(
    "/predict",
    response_model=PredictResponse,
    summary="Predict the action in one image (base64 or URL)",
    responses=error_responses(400, 401, 403, 413, 415, 422, 429, 503),
)
async def predict(
    body: PredictRequest, predictor: PredictorDep, clients: ClientsDep, settings: SettingsDep
) -> PredictResponse:
    """The top-k actions for an image sent as base64 (`image`) or fetched from a public
    http(s) URL (`image_url`; private, loopback and link-local addresses are refused)."""
    start = time.perf_counter()
    if body.image is None:
        assert body.image_url is not None
        data = await clients.fetch_url(body.image_url)
    elif len(body.image) <= _INLINE_BASE64:  # a typical photo: decoding costs less than a hand-off
        data = _b64(body.image)
    else:  # up to 20 MB of text: not on the event loop
        data = await predictor.in_pool(_b64, body.image)
    (scored,) = await predictor.predict([("image", data)], body.top_k or settings.model.top_k)
    return _response(scored, start, None)


@router.post(
    "/predict/image",
    response_model=PredictManyResponse,
    summary="Predict the action in uploaded image files (multipart)",
    responses=error_responses(401, 403, 413, 415, 422, 429, 503),
)
async def predict_image(
    predictor: PredictorDep,
    settings: SettingsDep,
    files: Annotated[
        list[UploadFile] | None, File(description="one or more image files (field `files`)")
    ] = None,
    file: Annotated[UploadFile | None, File(description="a single image (field `file`)")] = None,
    top_k: Annotated[int | None, Query(ge=1, le=100, description="labels per image")] = None,
) -> PredictManyResponse:
    """One result per uploaded file, in order. The type of each file is read from its bytes, not
    from the declared content type; if any file is not a usable image the request fails with 415
    or 422 naming it."""
    start = time.perf_counter()
    uploads = [*(files or []), *([file] if file is not None else [])]
    if not uploads:
        raise ApiError(422, "invalid_request", "send at least one file in field 'files'")
    if len(uploads) > settings.api.max_upload_files:
        raise ApiError(
            413,
            "too_many_files",
            f"{len(uploads)} files; at most {settings.api.max_upload_files} per request",
        )
    images = []
    for i, up in enumerate(uploads):
        images.append((up.filename or f"file {i + 1}", await up.read()))
    scored = await predictor.predict(images, top_k or settings.model.top_k)
    return PredictManyResponse(
        results=[_response(s, start, up.filename) for s, up in zip(scored, uploads, strict=True)]
    )
