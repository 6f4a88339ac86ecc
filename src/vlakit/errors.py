"""Error types shared across vlakit, and the "did you mean" helper used by every lookup."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VlakitError(Exception):
    """Base class for errors vlakit reports to users (the CLI prints them without a traceback)."""


class RegistryError(VlakitError, KeyError):
    """An unknown, duplicate or invalid component key."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class PluginError(VlakitError):
    """A plugin failed to import or does not implement the interface of its kind."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest valid name to ``name`` among ``candidates``, or None if nothing is close."""
    matches = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' Did you mean 'x'?' or the empty string."""
    match = closest(name, candidates)
    return f" Did you mean {match!r}?" if match else ""
