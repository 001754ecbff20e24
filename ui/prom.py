"""Prometheus text from a service's `/metrics` (API, worker, events app) read into what the
Performance page shows: counter totals, gauges, histograms with estimated quantiles, and rates
between two scrapes. Pure, apart from `scrape`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Histogram:
    """One histogram (summed over its label sets unless selected): cumulative bucket counts by
    upper bound, the sum (base units: seconds) and the count."""

    buckets: tuple[tuple[float, float], ...]  # (le, cumulative count), ascending, +Inf last
    sum: float
    count: float

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """Estimated `q` quantile (linear within a bucket, as PromQL's histogram_quantile)."""
        if not self.count or not self.buckets:
            return None
        rank = q * self.count
        prev_le, prev_n = 0.0, 0.0
        for le, n in self.buckets:
            if n >= rank:
                if math.isinf(le):
                    return prev_le
                if n == prev_n:
                    return le
                return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
            prev_le, prev_n = le, n
        return prev_le

    def per_bucket(self) -> list[tuple[str, float]]:
        """(bucket label, observations in that bucket only), for a bar chart."""
        out: list[tuple[str, float]] = []
        prev = 0.0
        for le, n in self.buckets:
            out.append(("+Inf" if math.isinf(le) else f"≤{le:g}", n - prev))
            prev = n
        return out


@dataclass(frozen=True, slots=True)
class Scrape:
    """Every sample of one `/metrics` answer: (sample name, labels) -> value."""

    samples: Mapping[tuple[str, Labels], float] = field(default_factory=dict)
    at_s: float = 0.0  # when it was read (monotonic seconds), for rates

    def total(self, name: str, **labels: str) -> float | None:
        """Sum of the samples called `name` whose labels include `labels`; None if none."""
        values = [v for (n, ls), v in self.samples.items() if n == name and _matches(ls, labels)]
        return sum(values) if values else None

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """The samples called `name`, summed per value of `label`."""
        out: dict[str, float] = {}
        for (n, ls), v in self.samples.items():
            if n == name:
                key = dict(ls).get(label, "")
                out[key] = out.get(key, 0.0) + v
        return out

    def histogram(self, name: str, **labels: str) -> Histogram | None:
        """The histogram `name` (without `_bucket`), summed over label sets matching `labels`."""
        bounds: dict[float, float] = {}
        for (n, ls), v in self.samples.items():
            if n == f"{name}_bucket" and _matches(ls, labels):
                le = float(dict(ls)["le"])
                bounds[le] = bounds.get(le, 0.0) + v
        if not bounds:
            return None
        return Histogram(
            buckets=tuple(sorted(bounds.items())),
            sum=self.total(f"{name}_sum", **labels) or 0.0,
            count=self.total(f"{name}_count", **labels) or 0.0,
        )

    def names(self) -> set[str]:
        return {n for n, _ in self.samples}


def _matches(have: Labels, want: Mapping[str, str]) -> bool:
    d = dict(have)
    return all(d.get(k) == v for k, v in want.items())


def parse(text: str, at_s: float = 0.0) -> Scrape:
    """A Prometheus text exposition; ValueError if it is not one."""
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return Scrape(samples=samples, at_s=at_s)


def rate(new: Scrape, old: Scrape | None, name: str, **labels: str) -> float | None:
    """Per-second increase of the counter `name` between two scrapes; None without two, or after
    a restart (the counter went down)."""
    if old is None or new.at_s <= old.at_s:
        return None
    a, b = old.total(name, **labels), new.total(name, **labels)
    if a is None or b is None or b < a:
        return None
    return (b - a) / (new.at_s - old.at_s)


def scrape(url: str, at_s: float, timeout_s: float = 3.0) -> Scrape:
    """GET `url` (a `/metrics` endpoint) and parse it; httpx.HTTPError or ValueError."""
    r = httpx.get(url, timeout=timeout_s)
    r.raise_for_status()
    return parse(r.text, at_s)


def first(values: Iterable[float | None]) -> float | None:
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)
