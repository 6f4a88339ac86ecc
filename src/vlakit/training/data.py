"""The data feed: one resumable training-batch stream per process, shared by every stage.

Lightning fetches a batch ahead of the one it trains on, so a loader's own ``state_dict()`` at
checkpoint time is one batch too far. The feed pairs every batch with the loader position right
after it; the module reports the position of the batch it trained on (:meth:`DataFeed.consumed`),
and that is what checkpoints hold and what every stage and every resume starts from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol


class ResumableLoader(Protocol):
    """An (infinite) iterable of :class:`~vlakit.types.Batch` whose position can be saved and restored."""

    def __iter__(self) -> Iterator[Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class DataFeed:
    """Builds the loader lazily (``make_loader(rank=, world_size=)``) and tracks the consumed position."""

    def __init__(self, make_loader: Callable[..., ResumableLoader]) -> None:
        self._make_loader = make_loader
        self._loader: ResumableLoader | None = None
        self._key: tuple[int, int] | None = None
        self._consumed: dict[str, Any] | None = None

    def loader(self, *, rank: int = 0, world_size: int = 1) -> ResumableLoader:
        if self._loader is None or self._key != (rank, world_size):
            self.close()
            self._loader = self._make_loader(rank=rank, world_size=world_size)
            self._key = (rank, world_size)
        return self._loader

    def iterable(self, *, rank: int = 0, world_size: int = 1) -> Iterable[tuple[Any, dict[str, Any]]]:
        """What Lightning iterates: ``(batch, position_after_batch)`` pairs, from the consumed position."""
        return _FeedIterable(self, rank=rank, world_size=world_size)

    def consumed(self, position: dict[str, Any]) -> None:
        """The module trained on the batch that ``position`` follows."""
        self._consumed = position

    def state_dict(self) -> dict[str, Any] | None:
        return self._consumed

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self._consumed = state

    def close(self) -> None:
        """Stop the loader's background process, if it has one (``data.prefetch``); iterating the feed
        again starts a new one at the consumed position."""
        close = getattr(self._loader, "close", None)
        if close is not None:
            close()


class _FeedIterable:
    def __init__(self, feed: DataFeed, *, rank: int, world_size: int) -> None:
        self.feed, self.rank, self.world_size = feed, rank, world_size

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        loader = self.feed.loader(rank=self.rank, world_size=self.world_size)
        if self.feed._consumed is not None:  # start exactly after the last trained batch
            loader.load_state_dict(copy.deepcopy(self.feed._consumed))
        for batch in loader:
            yield batch, copy.deepcopy(loader.state_dict())
