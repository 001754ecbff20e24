"""Performance: throughput, latency histograms (queue, infer, end to end), drops, dead letters
and consumer lag from the worker's `/metrics`, request latency and WebSocket figures from the
API's, events app figures from its own; refreshed every few seconds (rates between two reads).
Below, the online accuracy from operators' feedback (GET /feedback/counts) and the latest
training report when `HARCLIP_UI__REPORT` names one."""

from __future__ import annotations

import time

import httpx
import streamlit as st

from ui import charts, conn, feedback, prom, text
from ui import report as reports

_PREV = "perf-prev"  # session state: {source: Scrape} of the previous refresh


def _read(name: str, url: str) -> prom.Scrape | None:
    try:
        return prom.scrape(url, time.monotonic(), timeout_s=2.0)
    except (httpx.HTTPError, ValueError) as e:
        st.caption(f"{name}: no metrics at {url} ({type(e).__name__}); is it running?")
        return None


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.1f} ms"


def _latency(m: prom.Scrape, name: str, title: str) -> None:
    h = m.histogram(name)
    if h is None or not h.count:
        st.caption(f"{title}: no observations yet")
        return
    st.markdown(
        f"**{title}** — p50 {_ms(h.quantile(0.5))} · p95 {_ms(h.quantile(0.95))} · "
        f"mean {_ms(h.mean)} · {int(h.count)} observations"
    )
    st.altair_chart(charts.buckets(h.per_bucket()), width="stretch")


def _worker(m: prom.Scrape, old: prom.Scrape | None) -> None:
    st.subheader("Inference worker")
    fps = prom.rate(m, old, "harclip_frames_predicted_total")
    dropped = m.by_label("harclip_frames_dropped_total", "reason")
    lag = m.by_label("harclip_consumer_lag", "topic")
    a, b, c, d, e = st.columns(5)
    a.metric("frames/s", "–" if fps is None else f"{fps:.1f}")
    b.metric("predicted", f"{int(m.total('harclip_frames_predicted_total') or 0):,}")
    c.metric(
        "dropped",
        f"{int(sum(dropped.values())):,}",
        ", ".join(f"{k} {int(v)}" for k, v in dropped.items()) or None,
        delta_color="off",
        delta_arrow="off",
    )
    d.metric("dead-lettered", f"{int(m.total('harclip_frames_failed_total') or 0):,}")
    e.metric(
        "consumer lag",
        f"{int(sum(lag.values())):,}",
        ", ".join(f"{k}: {int(v)}" for k, v in lag.items()) or None,
        delta_color="off",
        delta_arrow="off",
    )
    errors = m.by_label("harclip_sink_errors_total", "sink")
    if any(errors.values()):
        st.warning("sink errors: " + ", ".join(f"{k} {int(v)}" for k, v in errors.items()))
    cols = st.columns(3)
    for col, (name, title) in zip(
        cols,
        (
            ("harclip_queue_latency_seconds", "queue (capture → batch)"),
            ("harclip_infer_latency_seconds", "infer (engine + head)"),
            ("harclip_e2e_latency_seconds", "end to end (capture → sinks)"),
        ),
        strict=True,
    ):
        with col:
            _latency(m, name, title)
    bs = m.histogram("harclip_batch_size")
    if bs is not None and bs.count:
        st.caption(f"batch size: mean {bs.mean or 0:.1f} over {int(bs.count)} batches")


def _api(m: prom.Scrape, old: prom.Scrape | None) -> None:
    st.subheader("API")
    rps = prom.rate(m, old, "harclip_http_requests_total")
    a, b, c, d = st.columns(4)
    a.metric("requests/s", "–" if rps is None else f"{rps:.1f}")
    b.metric("images predicted", f"{int(m.total('harclip_api_images_total') or 0):,}")
    c.metric("WebSocket clients", f"{int(m.total('harclip_ws_clients') or 0)}")
    d.metric("WS messages dropped", f"{int(m.total('harclip_ws_messages_dropped_total') or 0)}")
    left, right = st.columns(2)
    with left:
        _latency(m, "harclip_http_request_duration_seconds", "HTTP requests (all routes)")
    with right:
        h = m.histogram("harclip_http_request_duration_seconds", route="/predict/image")
        if h is not None and h.count:
            _latency_hist(h, "POST /predict/image")
        else:
            st.caption("POST /predict/image: no requests yet")


def _latency_hist(h: prom.Histogram, title: str) -> None:
    st.markdown(
        f"**{title}** — p50 {_ms(h.quantile(0.5))} · p95 {_ms(h.quantile(0.95))} · "
        f"{int(h.count)} requests"
    )
    st.altair_chart(charts.buckets(h.per_bucket()), width="stretch")


def _events_app(m: prom.Scrape) -> None:
    st.subheader("Events app")
    names = sorted(n for n in m.names() if n.startswith("harclip_") and n.endswith("_total"))
    if not names:
        st.caption("no harclip counters")
        return
    cols = st.columns(min(4, len(names)))
    for i, n in enumerate(names[:8]):
        cols[i % len(cols)].metric(
            n.removeprefix("harclip_").removesuffix("_total"), f"{int(m.total(n) or 0):,}"
        )


def _report() -> None:
    st.header("Training report")
    path = conn.settings().report
    if path is None:
        st.caption(
            "Set `HARCLIP_UI__REPORT` to a report folder of `python -m training` (or a "
            "bundle folder) to see its confusion matrix and per-class accuracy here."
        )
        return
    try:
        r = reports.load(path)
    except ValueError as e:
        st.warning(text.md(e))
        return
    st.caption(f"{text.md(r.title)} · {text.md(r.source)}")
    cols = st.columns(max(1, len(r.headline)))
    for col, (k, v) in zip(cols, r.headline.items(), strict=False):
        col.metric(text.md(k), f"{int(v):,}" if k == "n" else f"{v:.3f}")
    if r.confusion and r.classes:
        left, right = st.columns([3, 2])
        with left:
            st.markdown("**Confusion matrix** (rows: true, columns: predicted)")
            st.altair_chart(charts.confusion(r.confusion, r.classes), width="stretch")
        with right:
            st.altair_chart(
                charts.per_class(r.recall, "per-class accuracy (recall)"), width="stretch"
            )


def render() -> None:
    st.title("Performance")
    s = conn.settings()
    sources = {
        "worker": s.worker_metrics_url,
        "api": f"{s.api_url}/metrics",
        "events": s.events_metrics_url,
    }

    @st.fragment(run_every=max(2.0, s.refresh_s * 2))
    def live() -> None:
        prev: dict[str, prom.Scrape] = st.session_state.setdefault(_PREV, {})
        now = {k: _read(k, url) for k, url in sources.items()}
        if now["worker"] is not None:
            _worker(now["worker"], prev.get("worker"))
        if now["api"] is not None:
            _api(now["api"], prev.get("api"))
        if now["events"] is not None:
            _events_app(now["events"])
        prev.update({k: v for k, v in now.items() if v is not None})

    live()
    feedback.accuracy_section()
    _report()


render()
