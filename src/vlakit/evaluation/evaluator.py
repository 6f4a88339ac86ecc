"""Closed-loop evaluation over splits of any registered environment."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlakit.errors import VlakitError
from vlakit.evaluation.actors import Actor
from vlakit.evaluation.metrics import EpisodeResult, GroupStats, aggregate
from vlakit.evaluation.report import results_table, write_json_report, write_strip
from vlakit.evaluation.rollout import Recording, run_episodes
from vlakit.interfaces.env import Env


@dataclass
class EvalReport:
    """What :func:`evaluate` returns (and writes under ``out_dir``)."""

    stats: list[GroupStats]
    episodes: list[EpisodeResult]
    wall_s: float
    files: dict[str, Path] = field(default_factory=dict)

    def rate(self, split: str, family: str = "all") -> float:
        for g in self.stats:
            if g.split == split and g.family == family:
                return g.success_rate
        raise KeyError(f"no results for split {split!r} family {family!r}")


def make_env(env_spec: Any, *, split: str) -> Env:
    """Build the env of ``env_spec`` (an env Config) for ``split``.

    Envs whose Config has a ``split`` field get it set (and validated); any other env accepts only
    the split name ``default``.
    """
    fields = type(env_spec).model_fields
    if "split" in fields:
        spec = type(env_spec).model_validate({**env_spec.model_dump(), "split": split})
    elif split == "default":
        spec = env_spec
    else:
        raise VlakitError(f"environment {env_spec.type!r} has no scene splits (its Config has no `split` field); "
                          f"evaluate it with splits [default], not {split!r}")
    env = spec.build()
    if not isinstance(env, Env):
        raise VlakitError(f"{type(spec).__name__}.build() returned {type(env).__name__}, not an Env")
    return env


def evaluate(*, make_actor: Callable[[], Actor], env_spec: Any, splits: list[str], episodes: int, replan_every: int,
             seed: int, out_dir: Path | None = None, strip_episodes: int = 3, max_steps: int | None = None,
             console: Any = None, title: str = "closed-loop evaluation", info: dict[str, Any] | None = None,
             batch_size: int = 1) -> EvalReport:
    """Run ``episodes`` episodes per split and aggregate success per task family.

    Episode ``i`` of every split is reset with seed ``seed + i`` (the env maps seed and split to a
    scene), so different actors see identical episodes. With ``out_dir`` it writes
    ``eval_report.json``, ``episodes.png`` and ``episodes.gif`` (the first ``strip_episodes`` of each split).
    ``batch_size`` > 1 rolls that many episodes out in lockstep with one batched actor call per
    replan (actors that keep per-episode state still go one at a time); latencies are then those
    of the batched calls.
    """
    if batch_size < 1:
        raise VlakitError(f"eval batch_size must be >= 1, got {batch_size}")
    start = time.perf_counter()
    results: list[EpisodeResult] = []
    recordings: list[Recording] = []
    progress = _progress(console, total=episodes * len(splits))
    try:
        for split in splits:
            actor = make_actor()
            group = batch_size if actor.batchable else 1
            envs = [make_env(env_spec, split=split) for _ in range(min(group, episodes))]
            for first in range(0, episodes, group):
                ids = list(range(first, min(first + group, episodes)))
                outcomes = run_episodes(envs[:len(ids)], actor, seeds=[seed + i for i in ids], split=split,
                                        replan_every=replan_every, max_steps=max_steps,
                                        record=[i < strip_episodes for i in ids])
                for result, rec in outcomes:
                    results.append(result)
                    if rec is not None:
                        recordings.append(rec)
                if progress is not None:
                    done = sum(r.success for r in results if r.split == split)
                    progress[0].update(progress[1], advance=len(ids),
                                       description=f"eval {split}: {done}/{ids[-1] + 1} success")
    finally:
        if progress is not None:
            progress[0].stop()
    stats = aggregate(results)
    report = EvalReport(stats=stats, episodes=results, wall_s=time.perf_counter() - start)
    if out_dir is not None:
        out_dir = Path(out_dir)
        files = {"json": out_dir / "eval_report.json", "png": out_dir / "episodes.png",
                 "gif": out_dir / "episodes.gif"}
        write_json_report(files["json"], stats=stats, episodes=results,
                          info={"title": title, "env": env_spec.model_dump(mode="json"), "splits": splits,
                                "episodes_per_split": episodes, "replan_every": replan_every, "seed": seed,
                                "batch_size": batch_size,
                                "wall_s": report.wall_s, **(info or {})})
        write_strip(recordings, files["png"], files["gif"])
        report.files = files
    if console is not None:
        console.print(results_table(stats, title=title))
    return report


def _progress(console: Any, *, total: int) -> tuple[Any, Any] | None:
    if console is None or not console.is_terminal:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, transient=True)
    progress.start()
    return progress, progress.add_task("eval", total=total)
