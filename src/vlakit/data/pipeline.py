"""The data pipeline's entry points (what training, evaluation and tokenizer fitting call).

* :func:`prepare_sources` -- generate/check every source's data (cached; repeat calls are no-ops).
* :func:`compute_norm_stats` -- exact per-robot-type stats over every robot source.
* :func:`build_train_loader` -- the endless, resumable co-training batch stream.
* :func:`iter_action_chunks` -- normalised action chunks for fitting action tokenizers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vlakit.data.errors import DatasetError, NormStatsError
from vlakit.data.mixture import TrainLoader, build_mixture
from vlakit.data.normalize import ClipCounter, FeatureStats, NormStats, normalize
from vlakit.data.transforms import SampleTransform, collate, pad_last
from vlakit.interfaces.data_source import DataSource


def build_sources(data_spec: Any, *, horizon: int, cache_dir: str | Path | None = None) -> dict[str, DataSource]:
    """Instantiate every source of ``data_spec`` (nothing is generated or read yet)."""
    cache = Path(cache_dir if cache_dir is not None else data_spec.cache_dir).expanduser()
    return {name: cfg.build(name=name, horizon=horizon, cache_dir=cache) for name, cfg in data_spec.sources.items()}


def prepare_sources(data_spec: Any, *, cache_dir: str | Path | None = None, progress: bool = True) -> None:
    """Generate missing datasets of every source (cached by content hash; a second call is a no-op)."""
    for source in build_sources(data_spec, horizon=1, cache_dir=cache_dir).values():
        if not source.is_prepared():
            source.prepare(progress=progress)


def _loaded(data_spec: Any, *, horizon: int, cache_dir: str | Path | None) -> dict[str, DataSource]:
    sources = build_sources(data_spec, horizon=horizon, cache_dir=cache_dir)
    for source in sources.values():
        source.load()
    return sources


def compute_norm_stats(data_spec: Any, *, model_spec: Any, cache_dir: str | Path | None = None) -> NormStats:
    """Exact state/action statistics per robot type over every frame of every robot source.

    Sources that share a dataset count its frames once. Raises if a robot type's dims disagree
    between datasets or exceed ``model.max_action_dim``.
    """
    sources = _loaded(data_spec, horizon=model_spec.horizon, cache_dir=cache_dir)
    grouped: dict[str, dict[str, list[np.ndarray]]] = {}
    seen: set[str] = set()
    origin: dict[str, str] = {}
    for name, source in sources.items():
        rt = source.robot_type
        if rt is None:
            continue
        did = source.dataset_id() or f"source:{name}"
        if did in seen:
            continue
        seen.add(did)
        arrays = source.norm_arrays()
        for feature in ("state", "actions"):
            if feature not in arrays:
                raise DatasetError(f"data source {name!r} (robot type {rt!r}) provides no {feature!r} for stats")
            x = arrays[feature]
            group = grouped.setdefault(rt, {}).setdefault(feature, [])
            if group and group[0].shape[1] != x.shape[1]:
                raise DatasetError(f"robot type {rt!r}: {feature} has {x.shape[1]} dims in source {name!r} but "
                                   f"{group[0].shape[1]} in source {origin[rt]!r}; give one of them another "
                                   "robot_type")
            if x.shape[1] > model_spec.max_action_dim:
                raise DatasetError(f"data source {name!r}: {feature} has {x.shape[1]} dims, more than "
                                   f"model.max_action_dim={model_spec.max_action_dim}")
            group.append(x)
        origin.setdefault(rt, name)
    entries = {rt: {f: FeatureStats.from_array(np.concatenate(xs), where=f"robot type {rt!r} {f}")
                    for f, xs in feats.items()} for rt, feats in grouped.items()}
    return NormStats(mode=data_spec.normalization, entries=entries)


def _check_stats(sources: dict[str, DataSource], norm_stats: NormStats, *, mode: str) -> None:
    if norm_stats.mode != mode:
        raise NormStatsError(f"the norm stats were computed for normalization {norm_stats.mode!r}, the recipe's "
                             f"data.normalization is {mode!r}; recompute the stats")
    for name, source in sources.items():
        rt = source.robot_type
        if rt is None:
            continue
        arrays = source.norm_arrays()
        for feature in ("state", "actions"):
            stats = norm_stats.get(rt, feature)
            if feature in arrays and arrays[feature].shape[1] != stats.dim:
                raise NormStatsError(f"data source {name!r}: {feature} has {arrays[feature].shape[1]} dims, the "
                                     f"norm stats for {rt!r} have {stats.dim}; recompute the stats")


def build_train_loader(data_spec: Any, *, model_spec: Any, norm_stats: NormStats, seed: int, rank: int = 0,
                       world_size: int = 1, cache_dir: str | Path | None = None) -> TrainLoader:
    """Endless iterator of :class:`~vlakit.types.Batch` mixing the recipe's sources by weight.

    Every source is opened and one sample of each is transformed here, so bad data (missing files,
    camera mismatch, dims beyond ``max_action_dim``, stats that do not fit) fails before training.
    ``rank``/``world_size`` give each data-parallel rank its own stream. With ``data.prefetch`` the
    same stream is made ahead in a background process (:mod:`vlakit.data.background`); its data
    errors are raised at the first batch.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad rank/world_size {rank}/{world_size}")
    if data_spec.prefetch > 0:
        import functools

        from vlakit.data.background import BackgroundLoader

        factory = functools.partial(build_train_loader, data_spec.model_copy(update={"prefetch": 0}),
                                    model_spec=model_spec, norm_stats=norm_stats, seed=seed, rank=rank,
                                    world_size=world_size, cache_dir=cache_dir)
        return BackgroundLoader(factory, prefetch=data_spec.prefetch)  # type: ignore[return-value]
    sources = _loaded(data_spec, horizon=model_spec.horizon, cache_dir=cache_dir)
    _check_stats(sources, norm_stats, mode=data_spec.normalization)
    weights = {n: float(c.weight) for n, c in data_spec.sources.items() if float(c.weight) > 0}
    clip_counter = ClipCounter()
    loaders, sizes = {}, {}
    for name in weights:
        source, cfg = sources[name], data_spec.sources[name]
        transform = SampleTransform(source=name, cameras=model_spec.cameras, camera_map=dict(cfg.camera_map),
                                    max_action_dim=model_spec.max_action_dim, horizon=model_spec.horizon,
                                    norm_stats=norm_stats, image_size=getattr(data_spec, "image_size", None),
                                    clip_counter=ClipCounter())
        if len(source) == 0:
            raise DatasetError(f"data source {name!r} is empty")
        transform(source[0])  # validate now (cameras, dims, horizon) -- not counted
        transform.clip_counter = clip_counter
        loaders[name] = _Load(source, transform)
        sizes[name] = len(source)
    root = build_mixture(loaders=loaders, sizes=sizes, weights=weights, batch_size=data_spec.batch_size,
                         collate=collate, seed=int(seed), rank=rank, world_size=world_size,
                         num_workers=data_spec.num_workers)
    return TrainLoader(root, sources=sources, weights=weights, clip_counter=clip_counter)


class _Load:
    """``index -> transformed sample`` for one source (a named callable, for readable tracebacks)."""

    def __init__(self, source: DataSource, transform: SampleTransform) -> None:
        self.source, self.transform = source, transform

    def __call__(self, index: int) -> dict[str, Any]:
        return self.transform(self.source[index])


def iter_action_chunks(data_spec: Any, *, model_spec: Any, norm_stats: NormStats, max_chunks: int, seed: int = 0,
                       cache_dir: str | Path | None = None) -> np.ndarray:
    """Normalised action chunks for fitting an action tokenizer: float32 ``[N, H, max_action_dim]``,
    **zero-padded** past each robot's action dims (exactly what ``Batch.actions`` holds; padded
    timesteps past an episode end repeat the last action, as in training).

    ``N <= max_chunks`` chunks are drawn without replacement from the action-carrying sources,
    split in proportion to their weights; deterministic in ``seed``.
    """
    sources = _loaded(data_spec, horizon=model_spec.horizon, cache_dir=cache_dir)
    robot = {n: s for n, s in sources.items() if s.yields_actions and float(data_spec.sources[n].weight) > 0}
    if not robot:
        raise DatasetError("no data source with actions (and weight > 0) to draw action chunks from")
    total_w = sum(float(data_spec.sources[n].weight) for n in robot)
    rng = np.random.default_rng(seed)
    out = []
    for name, source in sorted(robot.items()):
        share = round(max_chunks * float(data_spec.sources[name].weight) / total_w)
        n = min(share, len(source))
        if n <= 0:
            continue
        rt = source.robot_type
        stats = norm_stats.get(rt, "actions")
        for i in rng.choice(len(source), size=n, replace=False):
            chunk = _raw_chunk(source, int(i))
            y, _ = normalize(chunk, stats, norm_stats.mode)
            out.append(pad_last(y, model_spec.max_action_dim, what=f"actions of {rt!r}")[0])
    return np.stack(out)[:max_chunks] if out else np.zeros((0, model_spec.horizon, model_spec.max_action_dim),
                                                           np.float32)


def _raw_chunk(source: DataSource, index: int) -> np.ndarray:
    ds = getattr(source, "ds", None)
    if ds is not None and hasattr(source, "action_key"):  # fast path: no image decoding
        return ds.chunk(source.action_key, index, source.horizon)[0]
    return source[index]["actions"]
