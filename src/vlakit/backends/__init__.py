"""Compute backends: ``cpu`` built in, ``auto`` picks the best available; GPUs come from plugins.

Importing this package registers the built-ins. Use :func:`select_backend` to turn a recipe's
``backend:`` spec into a :class:`~vlakit.interfaces.backend.ComputeBackend`; it fails with a
message saying why a requested backend is unavailable and which ones are.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from vlakit.backends import auto, cpu  # noqa: F401  (registers the built-ins)
from vlakit.errors import PluginError, VlakitError
from vlakit.interfaces.backend import ComputeBackend


class BackendUnavailableError(VlakitError):
    """A backend is installed but cannot run on this machine."""


@dataclass(frozen=True)
class BackendStatus:
    """One installed backend and whether it can run here."""

    key: str
    available: bool
    reason: str
    priority: int


def backend_statuses() -> list[BackendStatus]:
    """Every installed backend (plugins imported to ask them), best priority first.

    A plugin that fails to import is reported as unavailable with the reason, never raised.
    """
    from vlakit.registry import BACKENDS

    out = []
    for key in BACKENDS.keys():
        if key == "auto":
            continue
        try:
            cls = BACKENDS.get(key)
            ok, why = cls.availability()
            out.append(BackendStatus(key, bool(ok), str(why), int(cls.priority)))
        except PluginError as exc:
            out.append(BackendStatus(key, False, f"plugin failed to load: {exc}", -10))
        except Exception as exc:
            warnings.warn(f"backend {key!r} availability check failed: {exc}", stacklevel=2)
            out.append(BackendStatus(key, False, f"availability check failed: {exc}", -10))
    return sorted(out, key=lambda s: (-s.priority, s.key))


def _available_text(statuses: list[BackendStatus]) -> str:
    ok = [s.key for s in statuses if s.available]
    return ", ".join(ok) if ok else "(none)"


def best_available() -> str:
    """Key of the available backend with the highest priority."""
    statuses = backend_statuses()
    for s in statuses:
        if s.available:
            return s.key
    raise BackendUnavailableError("no compute backend is available: " + "; ".join(
        f"{s.key}: {s.reason}" for s in statuses))


def select_backend(spec: Any, *, precision: str | None = None) -> ComputeBackend:
    """Build the backend a recipe's ``backend:`` spec asks for.

    Args:
        spec: a backend Config (e.g. ``recipe.backend``) or a type name such as ``"cpu"``.
        precision: a Lightning precision string overriding the backend's default (None/"auto": keep).
    Raises:
        RegistryError: unknown backend type (lists valid ones, closest match).
        BackendUnavailableError: installed but unavailable here (says why, lists available ones).
    """
    from vlakit.registry import BACKENDS

    if isinstance(spec, str):
        spec = BACKENDS.config_class(spec)()
    key = spec.type
    if key != "auto":
        cls = BACKENDS.get(key)
        ok, why = cls.availability()
        if not ok:
            raise BackendUnavailableError(
                f"compute backend {key!r} is installed but not available on this machine: {why}. "
                f"Available backends: {_available_text(backend_statuses())} (or use `backend: {{type: auto}}`).")
    return spec.build(precision=precision)


__all__ = ["BackendStatus", "BackendUnavailableError", "backend_statuses", "best_available", "select_backend"]
