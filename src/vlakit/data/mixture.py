"""Weighted mixture of heterogeneous sources as a stateful ``torchdata.nodes`` graph.

Per source: an endless shuffled index stream (a new permutation every epoch) -> load + transform.
The sources are mixed by ``MultiNodeWeightedSampler`` with the recipe's weights, batched and
collated into :class:`~vlakit.types.Batch`. Every node is stateful, so
``TrainLoader.state_dict()`` captures the exact data position and ``load_state_dict`` resumes at the
very next batch (checkpoint/resume).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torchdata import nodes as tn

from vlakit.data.normalize import ClipCounter


class ShuffledIndices(tn.BaseNode[int]):
    """Endless indices into a source of ``size`` items: a fresh permutation per epoch."""

    def __init__(self, size: int, *, seed: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError("cannot sample from an empty source")
        self.size, self.seed = int(size), int(seed)
        self._epoch = self._pos = 0
        self._perm: np.ndarray | None = None

    def reset(self, initial_state: dict | None = None) -> None:
        super().reset(initial_state)
        self._epoch = int(initial_state["epoch"]) if initial_state else 0
        self._pos = int(initial_state["pos"]) if initial_state else 0
        self._perm = np.random.default_rng([self.seed, self._epoch]).permutation(self.size)

    def next(self) -> int:
        assert self._perm is not None
        if self._pos >= self.size:
            self._epoch, self._pos = self._epoch + 1, 0
            self._perm = np.random.default_rng([self.seed, self._epoch]).permutation(self.size)
        i = int(self._perm[self._pos])
        self._pos += 1
        return i

    def get_state(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "pos": self._pos}


class TrainLoader:
    """Endless iterator of :class:`~vlakit.types.Batch` with exact resume.

    ``state_dict()`` describes the position after the last batch returned; a loader built with the
    same arguments and given that state returns the same next batch.
    """

    def __init__(self, root: tn.BaseNode, *, sources: dict[str, Any], weights: dict[str, float],
                 clip_counter: ClipCounter) -> None:
        self._loader = tn.Loader(root, restart_on_stop_iteration=True)
        self._it: Iterator[Any] | None = None
        self.sources = sources
        self.weights = weights
        self.clip_counter = clip_counter

    def __iter__(self) -> TrainLoader:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = iter(self._loader)
        return next(self._it)

    def state_dict(self) -> dict[str, Any]:
        return self._loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._loader.load_state_dict(state)
        self._it = None

    def clipped_fractions(self) -> dict[str, float]:
        """Fraction of values clipped by quantile normalisation so far, per ``robot_type/feature``."""
        return self.clip_counter.fractions()


def build_mixture(*, loaders: dict[str, Callable[[int], dict[str, Any]]], sizes: dict[str, int],
                  weights: dict[str, float], batch_size: int, collate: Callable[[list], Any], seed: int,
                  rank: int, world_size: int, num_workers: int) -> tn.BaseNode:
    """The node graph: per-source ``indices -> loaders[name]`` mixed by ``weights``, batched, collated."""
    names = sorted(loaders)
    per_source: dict[str, tn.BaseNode] = {}
    for k, name in enumerate(names):
        idx = ShuffledIndices(sizes[name], seed=int(np.random.SeedSequence([seed, rank, k]).generate_state(1)[0]))
        if num_workers > 0:
            per_source[name] = tn.ParallelMapper(idx, loaders[name], num_workers=num_workers, in_order=True,
                                                 method="thread")
        else:
            per_source[name] = tn.Mapper(idx, loaders[name])
    mixed = tn.MultiNodeWeightedSampler(per_source, {n: weights[n] for n in names}, stop_criteria="CYCLE_FOREVER",
                                        rank=rank, world_size=world_size, seed=seed)
    return tn.Mapper(tn.Batcher(mixed, batch_size=batch_size, drop_last=True), collate)
