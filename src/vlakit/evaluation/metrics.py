"""Success statistics: Wilson score intervals and per (split, task family) aggregation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


def wilson_interval(successes: int, trials: int, *, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default 95 %). ``(0, 1)`` when ``trials`` is 0."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class EpisodeResult:
    """One closed-loop episode."""

    split: str
    family: str
    seed: int
    success: bool
    length: int  #: environment steps taken
    prompt: str
    chunks: int  #: policy calls
    latency_s: list[float]  #: wall time of each policy call
    failure: str | None = None  #: why the episode ended early (e.g. an undecodable action chunk)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GroupStats:
    """Aggregated episodes of one split and family (family ``"all"`` pools every family)."""

    split: str
    family: str
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_length: float
    mean_latency_ms: float
    p95_latency_ms: float
    failures: int  #: episodes aborted by an invalid chunk


def aggregate(results: list[EpisodeResult]) -> list[GroupStats]:
    """Stats per (split, family) plus an ``all`` row per split, in first-seen order."""
    groups: dict[tuple[str, str], list[EpisodeResult]] = {}
    for r in results:
        groups.setdefault((r.split, r.family), []).append(r)
    for split in dict.fromkeys(r.split for r in results):
        groups[(split, "all")] = [r for r in results if r.split == split]
    out = []
    for (split, family), rs in groups.items():
        n, k = len(rs), sum(r.success for r in rs)
        lo, hi = wilson_interval(k, n)
        lat = sorted(x for r in rs for x in r.latency_s)
        out.append(GroupStats(
            split=split, family=family, episodes=n, successes=k, success_rate=k / n, ci_low=lo, ci_high=hi,
            mean_length=sum(r.length for r in rs) / n,
            mean_latency_ms=1000 * sum(lat) / len(lat) if lat else 0.0,
            p95_latency_ms=1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0,
            failures=sum(r.failure is not None for r in rs)))
    order = {s: i for i, s in enumerate(dict.fromkeys(r.split for r in results))}
    return sorted(out, key=lambda g: (order[g.split], g.family == "all"))
