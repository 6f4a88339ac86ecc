"""Generate LeRobot v3 datasets of scripted-expert demonstrations in the tabletop world.

Resumable and atomic: episodes are first written one file each into ``.<name>.partial/`` next to
the output (a rerun with the same arguments skips the finished ones), then assembled into the
LeRobot layout and renamed into place in one step. A killed run therefore never leaves a folder
that looks like a complete dataset. Runs that share a data cache take a lock file (``.<name>.lock``, left in
place) around the build, so one builds each dataset and the others wait and reuse it.

Episode ``i`` uses env seed ``1_000_000 * (seed + 1) + i`` (disjoint from evaluation seeds) and the
family ``families[i % len(families)]``. Failed demonstrations (possible with action noise) are
retried with fresh noise, then without noise; only successful episodes are stored. Recorded actions
are the expert's *clean* actions; the executed ones carry the noise (DART-style), so the data
shows recoveries from perturbed states with corrective labels. ``grip_flips`` adds the mistakes a
learned policy makes with its jaws: at that rate per step the executed grip command is inverted
(jaws closed early, off target; an object dropped on the way), and the expert's labels show how to
recover. ``early_closes`` adds the one a policy makes most on push and pick-and-place: in that share
of the episodes the executed jaws close once, 1-4 steps before the expert would close them (where a
clean run of the expert first closes), beside the object instead of at the spot the expert chose;
the labels then show the expert opening and lining up again (or pushing, where the close landed on
the push line).

Episodes are independent (own seed, own env reset), so large datasets are generated, and their
frames PNG-encoded, by a pool of worker processes (``workers``, by default one per usable core); each
writes an episode shard (``.<name>.partial/episodes/*.npz``, PNG bytes per frame, kept across a
crash), and the parent assembles the shards into the LeRobot layout. The dataset is the same for
any number of workers.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from vlakit.data.errors import DatasetError
from vlakit.data.lerobot_format import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_FEATURES,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    EPISODES_PATH,
    IMAGE_PREFIX,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    arrow_column,
    feature_stats,
    image_stats,
    jsonable,
    write_table,
    write_tasks,
)
from vlakit.data.png import decode_png, encode_png
from vlakit.io import atomic_write_bytes, atomic_write_text

FPS = 10
_RETRIES = 4
#: episodes per worker below which a pool is not worth its start-up (about a second per process)
_EPISODES_PER_WORKER = 32


def generation_args(*, episodes: int, split: str, embodiment: str, families: tuple[str, ...] | list[str],
                    seed: int, noise: float, image_size: int, grip_flips: float = 0.0,
                    early_closes: float = 0.0) -> dict[str, Any]:
    args = {"generator": "tabletop/4", "episodes": int(episodes), "split": split, "embodiment": embodiment,
            "families": list(families), "seed": int(seed), "noise": float(noise), "image_size": int(image_size)}
    # mistakes are only keyed when used, so datasets without them keep their names
    if grip_flips:
        args["grip_flips"] = float(grip_flips)
    if early_closes:
        args["early_closes"] = float(early_closes)
    return args


def args_digest(args: dict[str, Any]) -> str:
    """Short stable hash of generation arguments (names cached dataset folders)."""
    import hashlib

    return hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:10]


def is_complete(out: Path, args: dict[str, Any] | None = None) -> bool:
    """True if ``out`` holds a finished dataset (generated with ``args``, when given)."""
    info = Path(out) / INFO_PATH
    if not info.is_file():
        return False
    if args is None:
        return True
    try:
        return json.loads(info.read_text()).get("vlakit", {}).get("args") == args
    except json.JSONDecodeError:
        return False


def _run_episode(env: Any, *, seed: int, noise: float, attempt: int, grip_flips: float = 0.0,
                 early_closes: float = 0.0) -> dict[str, Any] | None:
    rng = np.random.default_rng([seed, attempt])
    obs = env.reset(seed=seed)
    if attempt >= _RETRIES:  # the last attempt is clean
        noise = grip_flips = early_closes = 0.0
    close_at = None
    if early_closes and rng.random() < early_closes:
        first = first_close_step(env.fork())
        if first is not None and first >= 1:
            close_at = first - int(rng.integers(1, min(4, first) + 1))
    ep = record_expert(env, obs, rng=rng, noise=noise, grip_flips=grip_flips, close_at=close_at)
    return None if ep is None else {**ep, "seed": seed}


def first_close_step(env: Any) -> int | None:
    """The step at which the clean expert, acting from ``env``'s state, first closes open jaws (None if it
    never does). ``env`` is stepped: pass a fork."""
    for step in range(env.max_episode_steps):
        action = env.expert_action()
        if action[-1] > 0:
            return step
        _obs, _r, terminated, truncated, _info = env.step(action)
        if terminated or truncated:
            return None
    return None


def record_expert(env: Any, obs: Any, *, rng: np.random.Generator, noise: float,
                  grip_flips: float = 0.0, close_at: int | None = None) -> dict[str, Any] | None:
    """Let the env's scripted expert act from its current state (``obs``) until the episode ends.

    Records the expert's clean actions and executes them with Gaussian ``noise`` on every motion
    dimension (DART-style), with the grip command inverted at a rate of ``grip_flips`` per step
    (the last action entry; > 0 closes, <= 0 opens), and closing at step ``close_at`` whatever the
    expert says. Returns the episode (images per camera, state, action, subtask, subtask point, task,
    family, style), or None when the task was not achieved.
    """
    frames: dict[str, list] = {"overhead": [], "wrist": [], "state": [], "action": [], "subtask": [],
                               "subtask_point": []}
    info: dict[str, Any] = {"success": False}
    for step in range(env.max_episode_steps):
        clean = env.expert_action()
        frames["overhead"].append(obs.images["overhead"])
        frames["wrist"].append(obs.images["wrist"])
        frames["state"].append(obs.state)
        frames["action"].append(clean)
        frames["subtask"].append(obs.info["subtask"])
        frames["subtask_point"].append(obs.info["subtask_point"])
        executed = clean.copy()
        executed[:-1] += rng.normal(0.0, noise, size=len(clean) - 1)
        if grip_flips and rng.random() < grip_flips:
            executed[-1] = -1.0 if executed[-1] > 0 else 1.0
        if step == close_at:
            executed[-1] = 1.0
        obs, _r, terminated, truncated, info = env.step(executed)
        if terminated or truncated:
            break
    if not info["success"]:
        return None
    return {"images": {c: np.stack(frames[c]) for c in ("overhead", "wrist")},
            "state": np.stack(frames["state"]), "action": np.stack(frames["action"]).astype(np.float32),
            "subtask_point": np.stack(frames["subtask_point"]).astype(np.float32),
            "subtask": frames["subtask"], "task": env.task.instruction, "family": env.task.family,
            "style": env.task.scene.style.name}


#: what an episode shard holds: 2 = PNG bytes per frame (1 held raw frames); a partial generation
#: of another format is started afresh
SHARD_FORMAT = 2
_CAMERAS = ("overhead", "wrist")


def save_episode(path: Path, ep: dict[str, Any]) -> None:
    """Write episode ``ep`` (as :func:`record_expert` returns it, plus ``seed``) to the shard ``path``,
    its frames already PNG-encoded (so encoding runs in the episode workers, and shards are small)."""
    buf = io.BytesIO()
    meta = {k: ep[k] for k in ("subtask", "task", "family", "style", "seed")}
    frames = {}
    for c in _CAMERAS:
        pngs = [encode_png(im) for im in ep["images"][c]]
        frames[f"{c}_png"] = np.frombuffer(b"".join(pngs), np.uint8)
        frames[f"{c}_len"] = np.array([len(b) for b in pngs], np.int64)
    np.savez(buf, **frames, state=ep["state"], action=ep["action"], subtask_point=ep["subtask_point"],
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    # scratch: a shard damaged by a power loss is found when read back (_load_episode)
    atomic_write_bytes(path, buf.getvalue(), durable=False)


def _load_episode(path: Path) -> dict[str, Any]:
    """A shard written by :func:`save_episode`: ``pngs`` (PNG bytes per camera and frame), ``state``,
    ``action``, ``subtask_point`` and the metadata.

    Raises:
        DatasetError: the shard cannot be read (it is removed, so running the command again remakes it).
    """
    try:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            pngs = {}
            for c in _CAMERAS:
                data, ends = z[f"{c}_png"].tobytes(), np.cumsum(z[f"{c}_len"])
                pngs[c] = [data[a:b] for a, b in zip(np.r_[0, ends[:-1]], ends)]
            return {"pngs": pngs, "state": z["state"], "action": z["action"], "subtask_point": z["subtask_point"],
                    **meta}
    except (OSError, ValueError, KeyError, EOFError, NotImplementedError, zlib.error, zipfile.BadZipFile) as exc:
        path.unlink(missing_ok=True)
        raise DatasetError(f"episode shard {path} is damaged ({type(exc).__name__}: {exc}); it was removed, "
                           "run the same command again to make it anew") from None


def generate_tabletop_dataset(out: str | Path, *, episodes: int, split: str = "train", embodiment: str = "gripper",
                              families: tuple[str, ...] | list[str] = ("reach", "push", "pick_place"),
                              seed: int = 0, noise: float = 0.1, image_size: int = 64, progress: bool = True,
                              overwrite: bool = False, workers: int | None = None, grip_flips: float = 0.0,
                              early_closes: float = 0.0) -> Path:
    """Write a LeRobot v3 dataset of ``episodes`` expert demonstrations to ``out``; return ``out``.

    A no-op when ``out`` already holds a dataset generated with the same arguments. Raises
    :class:`DatasetError` if ``out`` holds something else (unless ``overwrite``). ``workers``: worker
    processes (None: one per usable CPU core, at most 8; small datasets are made in this process).
    """
    if episodes < 1:
        raise DatasetError(f"--episodes must be >= 1, got {episodes}")
    if workers is not None and workers < 1:
        raise DatasetError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    args = generation_args(episodes=episodes, split=split, embodiment=embodiment, families=families, seed=seed,
                           noise=noise, image_size=image_size, grip_flips=grip_flips, early_closes=early_closes)
    if is_complete(out, args):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # two runs sharing a data cache must not build the same folder at once: the second waits, then
    # finds the dataset complete
    with FileLock(out.parent / f".{out.name}.lock"):
        if is_complete(out, args):
            return out
        return _generate(out, args, overwrite=overwrite, progress=progress, workers=workers)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _pool_size(workers: int | None, jobs: int) -> int:
    """Worker processes for ``jobs`` episodes: 1 (no pool) unless each worker gets enough of them."""
    wanted = workers if workers is not None else min(usable_cores(), 8)
    return max(1, min(wanted, jobs // _EPISODES_PER_WORKER))


def _tabletop_env(args: dict[str, Any]) -> Any:
    from vlakit.envs.tabletop import TabletopConfig, TabletopEnv

    return TabletopEnv(TabletopConfig(split=args["split"], embodiment=args["embodiment"],
                                      families=tuple(args["families"]), image_size=args["image_size"]))


_WORKER_ENV: Any = None  #: a worker process's env (built once per process by _init_worker)


def _init_worker(args: dict[str, Any]) -> None:
    global _WORKER_ENV
    _WORKER_ENV = _tabletop_env(args)


def _episode_job(job: tuple[Path, int, dict[str, float]]) -> None:
    path, seed, perturb = job
    _write_episode(_WORKER_ENV, path, seed=seed, perturb=perturb)


def _perturbations(args: dict[str, Any]) -> dict[str, float]:
    """The generation arguments that perturb executed actions (``_run_episode``'s keywords)."""
    return {"noise": args["noise"], "grip_flips": args.get("grip_flips", 0.0),
            "early_closes": args.get("early_closes", 0.0)}


def _write_episode(env: Any, path: Path, *, seed: int, perturb: dict[str, float]) -> None:
    """Record the expert's episode ``seed`` into the shard ``path`` (retrying with fresh noise, then none)."""
    for attempt in range(_RETRIES + 1):
        ep = _run_episode(env, seed=seed, attempt=attempt, **perturb)
        if ep is not None:
            save_episode(path, ep)
            return
    raise RuntimeError(f"tabletop expert failed episode seed {seed} even without noise")


def _generate(out: Path, args: dict[str, Any], *, overwrite: bool, progress: bool, workers: int | None) -> Path:
    episodes, seed = args["episodes"], args["seed"]
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} already exists and was not generated with these arguments; pass --overwrite "
                           "or choose another --out")
    env = _tabletop_env(args)
    work = out.parent / f".{out.name}.partial"
    args_file = work / "args.json"
    work_args = {**args, "shard_format": SHARD_FORMAT}
    if work.exists() and (not args_file.is_file() or json.loads(args_file.read_text()) != work_args):
        shutil.rmtree(work)  # leftovers of a run with other arguments (or an older shard format)
    (work / "episodes").mkdir(parents=True, exist_ok=True)
    atomic_write_text(args_file, json.dumps(work_args))
    base = 1_000_000 * (seed + 1)
    shards = [work / "episodes" / f"{i:06d}.npz" for i in range(episodes)]
    perturb = _perturbations(args)
    jobs = [(path, base + i, perturb) for i, path in enumerate(shards) if not path.is_file()]
    size = _pool_size(workers, len(jobs))
    with progress_bar(progress) as bar, _pool(size, args) as pool:
        task = bar.add_task(f"tabletop {args['embodiment']}/{args['split']}"
                            + (f" ({size} processes)" if pool is not None else ""), total=episodes)
        bar.advance(task, episodes - len(jobs))
        if pool is None:
            for path, ep_seed, ep_perturb in jobs:
                _write_episode(env, path, seed=ep_seed, perturb=ep_perturb)
                bar.advance(task)
        else:
            for _ in pool.map(_episode_job, jobs, chunksize=4):
                bar.advance(task)
        return assemble_dataset(work, out, shards, env=env, args=args, bar=bar)


@contextlib.contextmanager
def _pool(size: int, args: dict[str, Any]) -> Iterator[Executor | None]:
    """A pool of ``size`` worker processes with an env each (None for size 1). Spawned, not forked: the
    parent may hold torch's thread pools, which do not survive a fork."""
    if size <= 1:
        yield None
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(size, mp_context=ctx, initializer=_init_worker, initargs=(args,)) as pool:
        yield pool


def assemble_dataset(work: Path, out: Path, shards: list[Path], *, env: Any, args: dict[str, Any], bar: Any) -> Path:
    """Assemble episode ``shards`` (written by :func:`save_episode`) into ``work/dataset``, then move it to
    ``out`` in one rename (replacing what was there) and remove ``work``. Returns ``out``."""
    final = work / "dataset"
    if final.exists():
        shutil.rmtree(final)
    _assemble(final, shards, env=env, args=args, bar=bar)
    if out.exists():
        shutil.rmtree(out)
    os.replace(final, out)
    shutil.rmtree(work, ignore_errors=True)
    return out


class _NullBar:
    """Stands in for a rich ``Progress`` when progress display is off."""

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def advance(self, *a: Any, **k: Any) -> None:
        return None


def progress_bar(enabled: bool) -> Any:
    if not enabled:
        return contextlib.nullcontext(_NullBar())
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def _features(env: Any, image_size: int) -> dict[str, dict[str, Any]]:
    img = {"dtype": "image", "shape": [image_size, image_size, 3], "names": ["height", "width", "channels"]}
    return {
        f"{IMAGE_PREFIX}overhead": dict(img),
        f"{IMAGE_PREFIX}wrist": dict(img),
        "observation.state": {"dtype": "float32", "shape": [env.state_dim], "names": list(env.state_names)},
        "action": {"dtype": "float32", "shape": [env.action_dim], "names": list(env.action_names)},
        "subtask": {"dtype": "string", "shape": [1], "names": None},
        # where the subtask happens (-1 where it has no object / no zone); see Task.subtask_point
        "subtask.point": {"dtype": "float32", "shape": [4], "names": ["object_x", "object_y", "zone_x", "zone_y"]},
        **DEFAULT_FEATURES,
    }


def _assemble(root: Path, shards: list[Path], *, env: Any, args: dict[str, Any], bar: Any) -> None:
    """Write the LeRobot layout under ``root`` from per-episode shard files."""
    features = _features(env, args["image_size"])
    task_ids: dict[str, int] = {}
    ep_rows: list[dict[str, Any]] = []
    pending: dict[str, list] = {k: [] for k in features}
    all_state, all_action, img_sample = [], [], {"overhead": [], "wrist": []}
    file_index, pending_bytes, index = 0, 0, 0
    limit = DEFAULT_DATA_FILE_SIZE_IN_MB * 1024 * 1024
    step = bar.add_task("assembling", total=len(shards))

    def flush() -> None:
        nonlocal file_index, pending_bytes
        if not pending["index"]:
            return
        cols = {k: arrow_column(features[k], pending[k] if features[k]["dtype"] in ("image", "string")
                                else np.concatenate(pending[k])) for k in features}
        write_table(root / DATA_PATH.format(chunk_index=file_index // DEFAULT_CHUNK_SIZE,
                                            file_index=file_index % DEFAULT_CHUNK_SIZE), cols, features)
        for k in pending:
            pending[k] = []
        file_index, pending_bytes = file_index + 1, 0

    for e, shard in enumerate(shards):
        ep = _load_episode(shard)
        pngs = ep["pngs"]
        n = len(ep["action"])
        tid = task_ids.setdefault(ep["task"], len(task_ids))
        size = sum(len(b) for c in pngs for b in pngs[c]) + n * 64
        if pending_bytes and pending_bytes + size > limit:
            flush()
        for c in ("overhead", "wrist"):
            pending[f"{IMAGE_PREFIX}{c}"].extend(pngs[c])
            img_sample[c].extend(decode_png(b) for b in pngs[c][:: max(1, n // 4)])
        pending["observation.state"].append(ep["state"])
        pending["action"].append(ep["action"])
        pending["subtask"].extend(ep["subtask"])
        pending["subtask.point"].append(ep["subtask_point"])
        pending["timestamp"].append(np.arange(n, dtype=np.float32) / FPS)
        pending["frame_index"].append(np.arange(n, dtype=np.int64))
        pending["episode_index"].append(np.full(n, e, np.int64))
        pending["index"].append(np.arange(index, index + n, dtype=np.int64))
        pending["task_index"].append(np.full(n, tid, np.int64))
        pending_bytes += size
        all_state.append(ep["state"])
        all_action.append(ep["action"])
        ep_stats = {"observation.state": feature_stats(ep["state"]), "action": feature_stats(ep["action"])}
        row = {"episode_index": e, "tasks": [ep["task"]], "length": n,
               "data/chunk_index": file_index // DEFAULT_CHUNK_SIZE, "data/file_index": file_index % DEFAULT_CHUNK_SIZE,
               "dataset_from_index": index, "dataset_to_index": index + n,
               "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
               "tabletop/family": ep["family"], "tabletop/style": ep["style"], "tabletop/seed": int(ep["seed"])}
        for feat, st in ep_stats.items():
            for name, value in st.items():
                row[f"stats/{feat}/{name}"] = np.asarray(value, np.float64).reshape(-1).tolist()
        ep_rows.append(row)
        index += n
        bar.advance(step)
    flush()
    import pyarrow as pa

    cols = {k: pa.array([r[k] for r in ep_rows]) for k in ep_rows[0]}
    write_table(root / EPISODES_PATH.format(chunk_index=0, file_index=0), cols, {})
    write_tasks(root / TASKS_PATH, list(task_ids))
    stats = {"observation.state": feature_stats(np.concatenate(all_state)),
             "action": feature_stats(np.concatenate(all_action))}
    for c in ("overhead", "wrist"):
        stats[f"{IMAGE_PREFIX}{c}"] = image_stats(np.stack(img_sample[c]))
    atomic_write_text(root / STATS_PATH, json.dumps(jsonable(stats)))
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": f"tabletop_{args['embodiment']}", "fps": FPS,
        "total_episodes": len(shards), "total_frames": index, "total_tasks": len(task_ids),
        "chunks_size": DEFAULT_CHUNK_SIZE, "data_files_size_in_mb": DEFAULT_DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "data_path": DATA_PATH,
        "video_path": None, "features": features, "splits": {"train": f"0:{len(shards)}"},
        "vlakit": {"args": args},
    }
    # info.json last: its presence marks the folder complete
    atomic_write_text(root / INFO_PATH, json.dumps(info, indent=2))
