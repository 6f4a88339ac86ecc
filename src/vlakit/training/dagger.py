"""On-policy corrections (DAgger, Ross et al. 2011) collected before a training stage.

Demonstrations only show the states an expert visits. A policy that is slightly off reaches states
they never show -- a gripper closed next to the wrong object, a push started off the line -- and
has no label for them. A stage with ``dagger:`` first rolls out the policy as trained so far (its
EMA weights, as deployed) in the recipe's environment, batched. From ``states_per_episode`` of the
states each rollout visits (at its replans), a fork of the environment lets the scripted expert
finish the task; every such continuation that succeeds becomes an episode of a new dataset (clean
expert labels, noise on the executed actions as in the generated demonstrations). The dataset joins
the data mixture as source ``dagger_<stage>`` from that stage on.

The dataset is written under ``<run>/dagger/<NN>-<stage>/`` atomically, keyed by what produced it
(the stage, its spec, the training step). A resumed run reuses it; a run killed while collecting
collects again, identically (the rollouts draw from their own seeded random stream, so training's
stream is the same as in an uninterrupted run).

The environment must expose its scripted expert: ``expert_action()``, ``fork()`` (an independent copy
at the current state with a fresh step budget) and ``observation()``. The embedded ``tabletop`` world
does.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from vlakit.errors import VlakitError
from vlakit.io import atomic_write_text

#: prefix of the data-source names collected datasets get in the mixture
SOURCE_PREFIX = "dagger_"
#: rollout episode ``i`` is reset with seed ``SEED_BASE + 1_000_000 * spec.seed + i``: disjoint from
#: evaluation (0, 1, ...) and from generated demonstrations (1_000_000 * (seed + 1) + i, seed < 999)
SEED_BASE = 1_000_000_000
_RETRIES = 2  # noisy attempts per continuation before a clean one
#: the collection's report, next to the dataset (a resumed run shows it again)
REPORT_FILE = "dagger_report.json"


@dataclass
class DaggerReport:
    """What a collection did (also stored in the dataset's ``meta/info.json``)."""

    path: Path
    rollouts: int
    rollout_success: float
    states: int
    episodes: int
    frames: int
    wall_s: float
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "rollouts": self.rollouts, "rollout_success": round(self.rollout_success, 4),
                "states": self.states, "episodes": self.episodes, "frames": self.frames,
                "wall_s": round(self.wall_s, 1), "reused": self.reused}

    def summary(self) -> str:
        if self.reused:
            return f"reused {self.episodes} expert continuations ({self.frames} frames) from {self.path}"
        return (f"{self.rollouts} rollouts (success {100 * self.rollout_success:.1f} %), {self.states} states "
                f"relabelled, {self.episodes} expert continuations ({self.frames} frames) in {self.wall_s:.0f}s "
                f"-> {self.path}")


def dagger_dir(out_dir: Path, index: int, stage_name: str) -> Path:
    return Path(out_dir) / "dagger" / f"{index:02d}-{stage_name}"


def collection_args(spec: Any, *, stage: str, step: int) -> dict[str, Any]:
    """What identifies a collection: a dataset made with other arguments is not reused."""
    env = spec.env
    return {"generator": "vlakit-dagger/1", "stage": stage, "step": int(step), "spec": spec.model_dump(mode="json"),
            # what the dataset writer records about the robot
            "embodiment": getattr(env, "embodiment", None), "image_size": getattr(env, "image_size", None)}


def check_env(env: Any) -> None:
    missing = [m for m in ("expert_action", "fork", "observation") if not callable(getattr(env, m, None))]
    if missing:
        raise VlakitError(f"dagger: environment {type(env).__name__} has no {', '.join(missing)}; on-policy "
                          "corrections need an env with a scripted expert that can be forked (tabletop has one)")
    cams = set(getattr(env, "cameras", []))
    if cams != {"overhead", "wrist"} or getattr(env.config, "image_size", None) is None:
        raise VlakitError(f"dagger: corrections are written in the tabletop dataset layout (overhead and wrist "
                          f"cameras, one image size); environment {type(env).__name__} has cameras {sorted(cams)}")


def collect(loaded: Any, spec: Any, out: Path, *, args: dict[str, Any], progress: bool = True) -> DaggerReport:
    """Roll out ``loaded`` (a :class:`~vlakit.policy_io.LoadedPolicy`) and write the corrections to ``out``.

    A no-op returning the existing dataset's report when ``out`` was collected with ``args``. Runs
    sharing the folder (DDP ranks) take a lock; one collects, the others reuse its dataset.
    """
    from vlakit.data.generate import is_complete

    out = Path(out)
    if is_complete(out, args):
        return reused_report(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.parent / f".{out.name}.lock"):
        if is_complete(out, args):
            return reused_report(out)
        # the rollouts sample noise from torch's stream: give them their own, leave training's untouched
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            try:
                return _collect(loaded, spec, out, args=args, progress=progress)
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def reused_report(out: Path) -> DaggerReport:
    """The report of the collection that wrote ``out`` (counts from its metadata if the report is gone)."""
    from vlakit.data.lerobot_format import INFO_PATH

    saved = out / REPORT_FILE
    if saved.is_file():
        fields = json.loads(saved.read_text())
        return DaggerReport(**{**fields, "path": out, "reused": True})
    info = json.loads((out / INFO_PATH).read_text())
    return DaggerReport(path=out, rollouts=0, rollout_success=0.0, states=0, episodes=int(info["total_episodes"]),
                        frames=int(info["total_frames"]), wall_s=0.0, reused=True)


def _collect(loaded: Any, spec: Any, out: Path, *, args: dict[str, Any], progress: bool) -> DaggerReport:
    from vlakit.data.generate import assemble_dataset, progress_bar, save_episode

    start = time.perf_counter()
    probe = spec.env.build()
    check_env(probe)
    work = out.parent / f".{out.name}.partial"
    if work.exists():
        shutil.rmtree(work)
    (work / "episodes").mkdir(parents=True)
    rng = np.random.default_rng([spec.seed, 17])
    shards: list[Path] = []
    outcomes: list[bool] = []
    states = 0
    frames = 0
    base = SEED_BASE + 1_000_000 * spec.seed
    with progress_bar(progress) as bar:
        task = bar.add_task("dagger rollouts", total=spec.episodes)
        for first in range(0, spec.episodes, spec.batch_size):
            envs = [spec.env.build() for _ in range(min(spec.batch_size, spec.episodes - first))]
            visited, success = _rollouts(loaded, envs, seeds=[base + first + i for i in range(len(envs))],
                                         replan_every=spec.replan_every)
            outcomes.extend(success)
            for forks in visited:
                picks = rng.choice(len(forks), size=min(spec.states_per_episode, len(forks)), replace=False)
                for k in sorted(int(p) for p in picks):
                    states += 1
                    ep = _continue(forks[k], seed=[spec.seed, len(outcomes), states], noise=spec.noise)
                    if ep is None:
                        continue
                    path = work / "episodes" / f"{len(shards):06d}.npz"
                    save_episode(path, {**ep, "seed": base + first})
                    shards.append(path)
                    frames += len(ep["action"])
            bar.advance(task, len(envs))
        if not shards:
            raise VlakitError(f"dagger: the expert finished none of the {states} states the policy visited; "
                              f"nothing to train on (env {spec.env.type})")
        assemble_dataset(work, out, shards, env=probe, args=args, bar=bar)
    report = DaggerReport(path=out, rollouts=len(outcomes), rollout_success=float(np.mean(outcomes)), states=states,
                          episodes=len(shards), frames=frames, wall_s=time.perf_counter() - start)
    atomic_write_text(out / REPORT_FILE, json.dumps(report.as_dict(), indent=2) + "\n")
    return report


def _rollouts(loaded: Any, envs: list[Any], *, seeds: list[int],
              replan_every: int) -> tuple[list[list[Any]], list[bool]]:
    """Drive every env through one episode with the policy, one batched call per replan (as in
    evaluation). Returns, per env, forks of the states at its replans after the first (the first is
    a reset state, which the demonstrations already cover), and whether the episode succeeded."""
    from vlakit.evaluation.actors import PolicyActor
    from vlakit.evaluation.rollout import run_episodes

    visited: list[list[Any]] = [[] for _ in envs]

    def visit(k: int, env: Any, steps: int) -> None:
        if steps > 0:
            visited[k].append(env.fork())

    outcomes = run_episodes(envs, PolicyActor(loaded), seeds=seeds, split="dagger", replan_every=replan_every,
                            visit=visit)
    return visited, [result.success for result, _rec in outcomes]


def _continue(fork: Any, *, seed: list[int], noise: float) -> dict[str, Any] | None:
    """The expert's continuation from ``fork``'s state: noisy attempts, then a clean one."""
    from vlakit.data.generate import record_expert

    for attempt in range(_RETRIES + 1):
        env = fork.fork()
        ep = record_expert(env, env.observation(), rng=np.random.default_rng([*seed, attempt]),
                    noise=noise if attempt < _RETRIES else 0.0)
        if ep is not None:
            return ep
    return None


def with_corrections(data_spec: Any, *, name: str, path: Path, weight: float, like: str) -> Any:
    """``data_spec`` plus source ``name`` reading the collected dataset at ``path``, configured like
    source ``like`` (its formatting options). It gets the share ``weight`` of the mixture; the other
    sources keep their proportions in the rest."""
    if like not in data_spec.sources:
        raise VlakitError(f"dagger: data source {like!r} (the one corrections are formatted like) is not in the "
                          f"recipe's data.sources {sorted(data_spec.sources)}")
    template = data_spec.sources[like]
    if "path" not in type(template).model_fields:
        raise VlakitError(f"dagger: data source {like!r} ({template.type}) cannot read a dataset folder (no `path` "
                          "field); corrections need a tabletop_episodes-like source")
    total = sum(float(s.weight) for s in data_spec.sources.values())
    sources = {n: s.model_copy(update={"weight": float(s.weight) * (1.0 - weight) / total})
               for n, s in data_spec.sources.items()}
    sources[name] = template.model_copy(update={"path": str(path), "weight": float(weight)})
    return data_spec.model_copy(update={"sources": sources})
