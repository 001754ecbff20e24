"""The adapter's jobs over the services: build a candidate from the feedback index, gate it
against the champion (the adapter in force, or none), publish it on `harclip.control`, promote a
kept version by hand, roll back. Used by `harclip adapt` (and by anything that wants to build
"after N new feedback items", e.g. a CronJob running `harclip adapt build --if-new N`).

Redis keeps what rollback needs (`{prefix}:adapter:versions`: version -> adapter JSON, the newest
`adapt.history` candidates plus those promoted lately), the promotions (`{prefix}:adapter:history`,
newest first: one JSON document per promotion or rollback) and the last build
(`{prefix}:adapter:last_build`). The control topic is the truth about what is in force; each
change of it is also an `adapter.promoted` Event on harclip.events (`harclip.adapt.announce`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from elasticsearch import ApiError, NotFoundError, TransportError
from pydantic import ValidationError
from redis.exceptions import RedisError

from harclip.adapt.announce import failures_key, promotion_event, send_event
from harclip.adapt.build import (
    NotEnoughFeedback,
    Usable,
    build_candidate,
    champion_score,
    in_scopes,
    usable_items,
)
from harclip.adapt.cache import Adapter
from harclip.adapt.holder import Published
from harclip.config import Settings
from harclip.control import ADAPTER_KEY, HEAD_KEY, ControlFollower, publish
from harclip.errors import HarclipError, MessageError, ModelError, Unavailable
from harclip.io.es import make_es
from harclip.io.store import make_redis
from harclip.io.topics import start_producer
from harclip.messages import ModelRef, PromotionReason, now_ms
from harclip.messages.feedback import Feedback
from harclip.model.bundle import Bundle
from harclip.model.head import Head

log = logging.getLogger(__name__)


class AdaptError(HarclipError):
    """An adapter job cannot go on (unknown version, nothing to roll back to)."""


@dataclass(frozen=True)
class InForce:
    """What the control topic says: the served head and the adapter record in force."""

    head: Head
    published: Published | None


@dataclass
class BuildReport:
    """What `build` did: skipped (and why), or the candidate, its score, the champion's, and
    whether it was promoted."""

    skipped: str | None = None
    candidate: int | None = None
    champion: int | None = None
    candidate_score: float | None = None
    champion_score: float | None = None
    promoted: bool = False
    items: int = 0
    new_items: int | None = None
    labels: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    alpha: float | None = None
    beta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _keys(s: Settings) -> tuple[str, str, str]:
    p = s.redis.key_prefix
    return f"{p}:adapter:versions", f"{p}:adapter:history", f"{p}:adapter:last_build"


def _bundle(s: Settings) -> Bundle:
    if s.model.bundle is None:
        raise ModelError("no model bundle: set HARCLIP_MODEL__BUNDLE (the served model's)")
    return Bundle.load(s.model.bundle)


async def in_force(s: Settings, bundle: Bundle) -> InForce:
    """The newest valid head and adapter records on harclip.control (the bundle's head if none)."""
    heads: list[bytes] = []
    adapters: list[bytes] = []
    follower = ControlFollower(s.kafka, {HEAD_KEY: heads.append, ADAPTER_KEY: adapters.append})
    try:
        await follower.catch_up()
    finally:
        await follower.stop()
    head = bundle.load_head()
    for raw in heads:
        try:
            h = Head.from_control(raw)
        except MessageError:
            continue
        if h.version > head.version and h.embed_dim == bundle.manifest.embed_dim:
            head = h
    published: Published | None = None
    for raw in adapters:
        try:
            p = Published.from_control(raw)
        except MessageError:
            continue
        if published is None or p.published_at > published.published_at:
            published = p
    return InForce(head, published)


async def read_feedback(s: Settings, *, since: int | None = None) -> tuple[list[Feedback], int]:
    """The newest `adapt.max_feedback` feedback documents (given after `since` ms, if set), and
    how many documents were not valid feedback. No index yet: none."""
    es = make_es(s.elasticsearch)
    query: dict[str, Any] = {"range": {"given_at": {"gt": since}}} if since else {"match_all": {}}
    try:
        resp = await es.search(index=s.elasticsearch.feedback_index, query=query,
                               size=s.adapt.max_feedback, sort=[{"given_at": "desc"}])  # fmt: skip
    except NotFoundError:
        return [], 0
    except (ApiError, TransportError) as e:
        raise Unavailable(f"cannot read {s.elasticsearch.feedback_index}: {e}") from e
    finally:
        await es.close()
    docs: list[Feedback] = []
    invalid = 0
    for h in resp["hits"]["hits"]:
        try:
            docs.append(Feedback.model_validate(h["_source"]))
        except ValidationError:
            invalid += 1
    return docs, invalid


async def count_since(s: Settings, since: int) -> int:
    """Feedback documents given after `since` (ms since epoch)."""
    es = make_es(s.elasticsearch)
    try:
        query = {"range": {"given_at": {"gt": since}}}
        resp = await es.count(index=s.elasticsearch.feedback_index, query=query)
        return int(resp["count"])
    except NotFoundError:
        return 0
    except (ApiError, TransportError) as e:
        raise Unavailable(f"cannot count {s.elasticsearch.feedback_index}: {e}") from e
    finally:
        await es.close()


async def build(
    s: Settings,
    scopes: tuple[str, ...] = ("*",),
    *,
    if_new: int | None = None,
    dry_run: bool = False,
) -> BuildReport:
    """Build a candidate from the feedback index, score it against the champion and promote it
    when it is better by `adapt.margin` (held-out accuracy). `if_new`: build only when that many
    feedback items arrived since the last build. `dry_run`: score, keep and publish nothing."""
    bundle = _bundle(s)
    versions, _, last_key = _keys(s)
    r = make_redis(s.redis)
    try:
        last = orjson.loads(await r.get(last_key) or b"{}")
        since = int(last.get("newest_given_at", 0))
        report = BuildReport()
        if if_new is not None:
            report.new_items = await count_since(s, since)
            if report.new_items < if_new:
                report.skipped = (
                    f"{report.new_items} new feedback items since the last build, {if_new} needed"
                )
                return report
        docs, invalid = await read_feedback(s)
        force = await in_force(s, bundle)
        m = bundle.manifest
        usable = usable_items(docs, m.embed_dim, f"{m.name}/{m.version}")
        if invalid:
            usable.skipped["invalid"] = invalid
        items = in_scopes(usable.items, scopes)
        report.items, report.left_out = len(items), _left_out(usable, len(items))
        champion = force.published.adapter if force.published else None
        try:
            cand = build_candidate(items, force.head, scopes, s.adapt, version=now_ms(),
                                   model=f"{m.name}/{m.version}")  # fmt: skip
        except NotEnoughFeedback as e:
            report.skipped = str(e)
            return report
        report.candidate, report.candidate_score = cand.version, cand.cv_score
        report.alpha, report.beta, report.labels = cand.alpha, cand.beta, cand.counts()
        report.champion = champion.version if champion else None
        report.champion_score = champion_score(champion, items, force.head)
        assert cand.cv_score is not None
        report.promoted = cand.cv_score >= report.champion_score + s.adapt.margin
        if dry_run:
            return report
        await r.hset(versions, str(cand.version), cand.to_json())
        newest = max((d.given_at for d in docs), default=since)
        await r.set(last_key, orjson.dumps({"at": now_ms(), "version": cand.version,
                    "newest_given_at": newest, "promoted": report.promoted}))  # fmt: skip
        if report.promoted:
            await _promote(s, r, cand, champion, "gate", report.candidate_score,
                           report.champion_score, _ref(bundle, force))  # fmt: skip
        else:
            log.info("adapter candidate v%d not promoted: held-out accuracy %.3f vs %.3f of %s "
                     "(margin %.3f)", cand.version, report.candidate_score, report.champion_score,
                     _name(champion), s.adapt.margin)  # fmt: skip
        await _trim(s, r)
        return report
    except RedisError as e:
        raise Unavailable(f"cannot reach Redis at {s.redis.url}: {e}") from e
    finally:
        await r.aclose()


async def promote(s: Settings, version: int | None = None) -> Adapter:
    """Publish a kept version (default: the newest candidate built) without the gate."""
    versions, _, last_key = _keys(s)
    bundle = _bundle(s)
    r = make_redis(s.redis)
    try:
        if version is None:
            last = orjson.loads(await r.get(last_key) or b"{}")
            if "version" not in last:
                raise AdaptError("no candidate built yet: run `harclip adapt build`")
            version = int(last["version"])
        raw = await r.hget(versions, str(version))
        if raw is None:
            raise AdaptError(f"no adapter v{version} kept (see `harclip adapt status`)")
        cand = Adapter.from_json(raw)
        force = await in_force(s, bundle)
        champion = force.published.adapter if force.published else None
        await _promote(s, r, cand, champion, "manual", cand.cv_score, None, _ref(bundle, force))
        return cand
    except RedisError as e:
        raise Unavailable(f"cannot reach Redis at {s.redis.url}: {e}") from e
    finally:
        await r.aclose()


async def rollback(s: Settings) -> Adapter | None:
    """Put back the adapter in force before the last promotion (None: no adapter)."""
    versions, history, _ = _keys(s)
    bundle = _bundle(s)
    r = make_redis(s.redis)
    try:
        raw = await r.lindex(history, 0)
        if raw is None:
            raise AdaptError("nothing to roll back: no adapter was promoted")
        last = orjson.loads(raw)
        prev = last.get("previous")
        adapter = None
        if prev is not None:
            kept = await r.hget(versions, str(prev))
            if kept is None:
                raise AdaptError(f"adapter v{prev} is no longer kept; promote another version")
            adapter = Adapter.from_json(kept)
        force = await in_force(s, bundle)
        current = force.published.adapter if force.published else None
        score = None if adapter is None else adapter.cv_score
        await _publish(s, r, adapter, current, "rollback", score, None, _ref(bundle, force))
        return adapter
    except RedisError as e:
        raise Unavailable(f"cannot reach Redis at {s.redis.url}: {e}") from e
    finally:
        await r.aclose()


async def status(s: Settings) -> dict[str, Any]:
    """The adapter in force, the promotions (newest first) and the versions kept."""
    versions, history, last_key = _keys(s)
    force = await in_force(s, _bundle(s))
    r = make_redis(s.redis)
    try:
        entries = [orjson.loads(x) for x in await r.lrange(history, 0, s.adapt.history - 1)]
        kept = sorted(int(v) for v in await r.hkeys(versions))
        last = orjson.loads(await r.get(last_key) or b"null")
        event_failures = int(await r.get(failures_key(s)) or 0)
    except RedisError as e:
        raise Unavailable(f"cannot reach Redis at {s.redis.url}: {e}") from e
    finally:
        await r.aclose()
    a = force.published.adapter if force.published else None
    summary = None
    if a is not None:
        summary = {"version": a.version, "items": a.size, "labels": a.counts(), "scopes": a.scopes,
                   "alpha": a.alpha, "beta": a.beta, "cv_score": a.cv_score,
                   "built_at": a.built_at, "feedback_count": a.feedback_count}  # fmt: skip
    return {"in_force": summary, "history": entries, "kept": kept, "last_build": last,
            "event_failures": event_failures}  # fmt: skip


async def _promote(
    s: Settings, r: Any, cand: Adapter, champion: Adapter | None, how: PromotionReason,
    score: float | None, champion_score: float | None, model: ModelRef,
) -> None:  # fmt: skip
    await r.hset(_keys(s)[0], str(cand.version), cand.to_json())
    await _publish(s, r, cand, champion, how, score, champion_score, model)


async def _publish(
    s: Settings, r: Any, adapter: Adapter | None, previous: Adapter | None,
    how: PromotionReason, score: float | None, champion_score: float | None, model: ModelRef,
) -> None:  # fmt: skip
    """Publish on harclip.control, then the `adapter.promoted` event on harclip.events (its
    failure is logged and counted, the promotion stands), record the promotion (a document in
    Redis) and log it."""
    published = Published.now(adapter)
    event = promotion_event(published, previous, how, score=score,
                            champion_score=champion_score, model=model)  # fmt: skip
    producer = await start_producer(s.kafka)
    try:
        await publish(producer, s.kafka, ADAPTER_KEY, published.to_control())
        sent = await send_event(s, producer, r, event)
    finally:
        await producer.stop()
    entry = {"action": how, "version": adapter.version if adapter else None,
             "previous": previous.version if previous else None, "at": published.published_at,
             "score": score, "champion_score": champion_score,
             "event_id": event.event_id, "event_sent": sent}  # fmt: skip
    history = _keys(s)[1]
    await r.lpush(history, orjson.dumps(entry))
    await r.ltrim(history, 0, 10 * s.adapt.history - 1)
    log.info("adapter %s in force (%s; was %s; held-out accuracy %s vs %s; event %s%s)",
             _name(adapter), how, _name(previous), _fmt(score), _fmt(champion_score),
             event.event_id, "" if sent else " NOT sent")  # fmt: skip


def _ref(bundle: Bundle, force: InForce) -> ModelRef:
    m = bundle.manifest
    return ModelRef(name=m.name, version=str(m.version), head_version=force.head.version)


async def _trim(s: Settings, r: Any) -> None:
    """Keep the newest `adapt.history` versions and every version of the last promotions."""
    versions, history, _ = _keys(s)
    kept = sorted((int(v) for v in await r.hkeys(versions)), reverse=True)
    if len(kept) <= s.adapt.history:
        return
    recent = [orjson.loads(x) for x in await r.lrange(history, 0, s.adapt.history - 1)]
    keep = set(kept[: s.adapt.history])
    keep |= {e.get(k) for e in recent for k in ("version", "previous")} - {None}
    drop = [str(v) for v in kept if v not in keep]
    if drop:
        await r.hdel(versions, *drop)


def _left_out(u: Usable, used: int) -> dict[str, int]:
    out = dict(u.skipped)
    if len(u.items) > used:
        out["out_of_scope"] = len(u.items) - used
    return out


def _name(a: Adapter | None) -> str:
    return "none" if a is None else f"v{a.version}"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
