"""Normalised action chunks ``[N, H, A]`` from a LeRobot v3 dataset folder (for fitting/reporting
tokenizers). Reads the parquet files directly with pyarrow; no video, no Hub.

Layout used: ``meta/info.json`` (``features[key].shape``), ``meta/stats.json`` (``q01``/``q99`` of
``key``), ``data/chunk-*/file-*.parquet`` (columns ``key`` -- a fixed-size list of floats --,
``episode_index`` and, when present, ``frame_index``).

Normalisation is openpi's quantile rule ``(x - q01) / (q99 - q01 + 1e-6) * 2 - 1`` without
clipping. A chunk starts at every ``stride``-th frame of an episode and runs ``H`` frames; steps
past the episode end repeat its last action, as LeRobot's reader does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlakit.interfaces.action_tokenizer import ActionTokenizerError

_EPS = 1e-6


@dataclass
class DatasetChunks:
    """Action chunks of one dataset.

    Attributes:
        name: the dataset folder name.
        chunks: float32 ``[N, H, A]`` normalised actions.
        num_episodes: episodes read.
        num_frames: frames read.
    """

    name: str
    chunks: np.ndarray
    num_episodes: int
    num_frames: int


def load_action_chunks(folder: str | Path, *, horizon: int, stride: int = 1, max_chunks: int | None = None,
                       key: str = "action") -> DatasetChunks:
    """Read, normalise and chunk the ``key`` column of the LeRobot v3 dataset at ``folder``.

    ``max_chunks`` keeps an evenly spaced (deterministic) subset of the chunk start positions.
    Raises :class:`ActionTokenizerError` naming the file and field for any missing or malformed
    piece.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if horizon < 1 or stride < 1 or (max_chunks is not None and max_chunks < 1):
        raise ActionTokenizerError(f"horizon, stride and max_chunks must be >= 1; got {horizon}, {stride}, "
                                   f"{max_chunks}")
    root = Path(folder)
    if not root.is_dir():
        raise ActionTokenizerError(f"dataset folder {root} does not exist")
    dim = _feature_dim(root / "meta" / "info.json", key)
    q01, q99 = _quantiles(root / "meta" / "stats.json", key, dim)
    files = sorted((root / "data").glob("chunk-*/file-*.parquet"))
    if not files:
        raise ActionTokenizerError(f"{root / 'data'} holds no chunk-*/file-*.parquet files "
                                   "(is this a LeRobot v3 dataset?)")
    actions, episodes, frames = [], [], []
    for f in files:
        try:
            names = pq.read_schema(f).names
            cols = [key, "episode_index"] + (["frame_index"] if "frame_index" in names else [])
            missing = [c for c in cols[:2] if c not in names]
            if missing:
                raise ActionTokenizerError(f"{f} has no column(s) {', '.join(missing)}; columns: "
                                           f"{', '.join(names)}")
            table = pq.read_table(f, columns=cols)
        except (OSError, pa.ArrowException) as exc:
            raise ActionTokenizerError(f"cannot read {f}: {exc}") from None
        actions.append(_column_matrix(table.column(key), dim, where=f"{f} column {key!r}"))
        episodes.append(table.column("episode_index").to_numpy().astype(np.int64).reshape(-1))
        frames.append(table.column("frame_index").to_numpy().astype(np.int64).reshape(-1)
                      if "frame_index" in cols else np.arange(table.num_rows, dtype=np.int64))
    x = np.concatenate(actions)
    ep = np.concatenate(episodes)
    order = np.lexsort((np.concatenate(frames), ep))
    x, ep = x[order], ep[order]
    if not np.isfinite(x).all():
        raise ActionTokenizerError(f"{root}: column {key!r} has {int((~np.isfinite(x)).any(axis=1).sum())} "
                                   "frames with non-finite values")
    x = ((x - q01) / (q99 - q01 + _EPS) * 2.0 - 1.0).astype(np.float32)
    index = _chunk_index(ep, horizon=horizon, stride=stride)
    if max_chunks is not None and len(index) > max_chunks:
        index = index[np.unique(np.linspace(0, len(index) - 1, max_chunks).round().astype(np.int64))]
    return DatasetChunks(name=root.name, chunks=x[index], num_episodes=len(np.unique(ep)), num_frames=len(x))


def _chunk_index(episode: np.ndarray, *, horizon: int, stride: int) -> np.ndarray:
    """int64 ``[N, H]`` frame indices of every chunk (episode-sorted frames; clamped at episode ends)."""
    bounds = np.flatnonzero(np.diff(episode)) + 1
    starts_ep = np.concatenate([[0], bounds])
    ends_ep = np.concatenate([bounds, [len(episode)]])
    lengths = ends_ep - starts_ep
    per_ep = (lengths + stride - 1) // stride
    first = np.repeat(starts_ep, per_ep)
    last = np.repeat(ends_ep - 1, per_ep)
    within = np.arange(per_ep.sum()) - np.repeat(np.cumsum(per_ep) - per_ep, per_ep)
    start = first + within * stride
    return np.minimum(start[:, None] + np.arange(horizon)[None, :], last[:, None])


def _feature_dim(info_path: Path, key: str) -> int:
    info = _read_json(info_path)
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise ActionTokenizerError(f"{info_path}: codebase_version is {version or 'missing'}; only LeRobot "
                                   "v3 datasets are supported")
    feature = info.get("features", {}).get(key)
    if feature is None:
        raise ActionTokenizerError(f"{info_path}: no feature {key!r}; features: "
                                   f"{', '.join(info.get('features', {}))}")
    shape = feature.get("shape")
    if not (isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] >= 1):
        raise ActionTokenizerError(f"{info_path}: features.{key}.shape must be [D]; got {shape!r}")
    return shape[0]


def _quantiles(stats_path: Path, key: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    stats = _read_json(stats_path).get(key)
    if not isinstance(stats, dict) or "q01" not in stats or "q99" not in stats:
        raise ActionTokenizerError(f"{stats_path}: no q01/q99 for {key!r} (recompute the dataset stats "
                                   "with quantiles, e.g. `lerobot-edit-dataset --operation.type recompute_stats`)")
    q01 = np.asarray(stats["q01"], dtype=np.float64).reshape(-1)
    q99 = np.asarray(stats["q99"], dtype=np.float64).reshape(-1)
    if q01.shape != (dim,) or q99.shape != (dim,):
        raise ActionTokenizerError(f"{stats_path}: {key}.q01/q99 have {q01.size}/{q99.size} values; the "
                                   f"feature has {dim} dims")
    return q01, q99


def _column_matrix(column: object, dim: int, *, where: str) -> np.ndarray:
    import pyarrow as pa

    arr = column.combine_chunks()  # type: ignore[attr-defined]
    if not (pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type)):
        raise ActionTokenizerError(f"{where} must be a list of floats per frame; got {arr.type}")
    if arr.null_count:
        raise ActionTokenizerError(f"{where} has {arr.null_count} null rows")
    if pa.types.is_list(arr.type):
        lengths = arr.value_lengths().to_numpy()
        if len(lengths) and not (lengths == dim).all():
            raise ActionTokenizerError(f"{where}: rows have lengths {sorted(set(lengths.tolist()))[:5]}, "
                                       f"expected {dim}")
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    if values.size != len(arr) * dim:
        raise ActionTokenizerError(f"{where}: {values.size} values for {len(arr)} rows of {dim}")
    return values.reshape(len(arr), dim)


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ActionTokenizerError(f"{path} does not exist (is this a LeRobot v3 dataset folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ActionTokenizerError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ActionTokenizerError(f"{path} must hold a JSON object")
    return doc
