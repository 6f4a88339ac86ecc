"""Normalised action chunks ``[N, H, A]`` from a LeRobot v3 dataset folder (for fitting/reporting
tokenizers), read with :class:`vlakit.data.lerobot_reader.LeRobotDataset` (no video decoding, no
Hub).

Normalisation is the training pipeline's: quantile mode of :func:`vlakit.data.normalize.normalize`
(``2 (x - q01) / (q99 - q01) - 1``, clipped to ``[-1, 1]``) with the exact statistics of the
dataset's ``key`` column (:meth:`FeatureStats.from_array`, as training computes them from the same
column), so the fitted tokenizer sees the values it will encode during training. A chunk starts at
every ``stride``-th frame of an episode and runs ``H`` frames; steps past the episode end repeat its
last action, as LeRobot's reader does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlakit.interfaces.action_tokenizer import ActionTokenizerError


@dataclass
class DatasetChunks:
    """Action chunks of one dataset.

    Attributes:
        name: the dataset folder name.
        chunks: float32 ``[N, H, A]`` normalised actions.
        num_episodes: episodes read.
        num_frames: frames read.
        clipped: normalised values clipped to ``[-1, 1]`` (outside the dataset's q01..q99).
    """

    name: str
    chunks: np.ndarray
    num_episodes: int
    num_frames: int
    clipped: int = 0


def load_action_chunks(folder: str | Path, *, horizon: int, stride: int = 1, max_chunks: int | None = None,
                       key: str = "action") -> DatasetChunks:
    """Read, normalise and chunk the ``key`` column of the LeRobot v3 dataset at ``folder``.

    ``max_chunks`` keeps an evenly spaced (deterministic) subset of the chunk start positions.
    Raises :class:`ActionTokenizerError` naming the file and field for any missing or malformed
    piece (the reader's :class:`~vlakit.data.errors.DatasetError`, re-raised).
    """
    from vlakit.data.errors import DatasetError, NormStatsError
    from vlakit.data.lerobot_format import INFO_PATH
    from vlakit.data.lerobot_reader import LeRobotDataset
    from vlakit.data.normalize import FeatureStats, normalize

    if horizon < 1 or stride < 1 or (max_chunks is not None and max_chunks < 1):
        raise ActionTokenizerError(f"horizon, stride and max_chunks must be >= 1; got {horizon}, {stride}, "
                                   f"{max_chunks}")
    root = Path(folder)
    try:
        ds = LeRobotDataset(root)
    except (DatasetError, OSError) as exc:
        raise ActionTokenizerError(str(exc)) from None
    feature = ds.features.get(key)
    if feature is None:
        raise ActionTokenizerError(f"{root / INFO_PATH}: no feature {key!r}; features: {', '.join(ds.features)}")
    shape = feature.get("shape")
    if not ds.has(key) or "float" not in str(feature.get("dtype")) or not (
            isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] >= 1):
        raise ActionTokenizerError(f"{root / INFO_PATH}: feature {key!r} must be a float vector of shape [D]; "
                                   f"got dtype {feature.get('dtype')!r}, shape {shape!r}")
    x = ds.array(key)
    try:
        stats = FeatureStats.from_array(x, where=f"{root}: column {key!r}")
        normalised, clipped = normalize(x, stats, "quantile")
    except NormStatsError as exc:
        raise ActionTokenizerError(str(exc)) from None
    index = _chunk_index(ds.array("episode_index").reshape(-1), horizon=horizon, stride=stride)
    if max_chunks is not None and len(index) > max_chunks:
        index = index[np.unique(np.linspace(0, len(index) - 1, max_chunks).round().astype(np.int64))]
    return DatasetChunks(name=root.name, chunks=normalised[index], num_episodes=ds.num_episodes,
                         num_frames=len(ds), clipped=clipped)


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
