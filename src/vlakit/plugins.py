"""Plugin discovery through entry points -- the only module that reads them.

One entry-point group per kind (``vlakit.vision_encoders``, ``vlakit.backends``, ...; see
:data:`vlakit.registry.KINDS`) plus ``vlakit.recipes`` for recipe folders. The entry-point name is
the registry key; the object is the component class (``pkg.module:Class``). For recipe folders the
object is a package (its directory holds the YAML files), a path, or a callable returning a path.

Discovery is lazy: listing reads only the installed distributions' metadata; a plugin's code is
imported when its key is requested. A plugin that fails to import, or whose class does not
implement the interface, is reported as a :class:`PluginWarning` naming the distribution and the
reason, and is then unavailable -- every other command keeps working.

``VLAKIT_DISABLE_PLUGIN_AUTOLOAD=1`` turns discovery off (like ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``).
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlakit.errors import PluginError

DISABLE_ENV = "VLAKIT_DISABLE_PLUGIN_AUTOLOAD"


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the rest of vlakit keeps working."""


@dataclass(frozen=True)
class PluginInfo:
    """One entry point, described without importing it."""

    name: str
    group: str
    target: str  #: "module:object"
    distribution: str
    version: str
    status: str  #: "not loaded", "loaded" or "failed: <reason>"


_failures: dict[tuple[str, str], str] = {}
_loaded: set[tuple[str, str]] = set()


def autoload_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


_scanned: dict[tuple[str, tuple[str, ...]], list[Any]] = {}


def _entry_points(group: str) -> list[Any]:
    """Entry points of ``group``; the sys.path scan is cached per (group, sys.path)."""
    if autoload_disabled():
        return []
    import entrypoints

    key = (group, tuple(sys.path))
    if key in _scanned:
        return _scanned[key]
    try:
        found = list(entrypoints.get_group_all(group))
    except Exception as exc:  # a broken dist-info must not break vlakit
        warnings.warn(f"could not read entry points of group {group!r}: {exc}", PluginWarning, stacklevel=2)
        return []
    _scanned[key] = found
    return found


def _find(group: str, name: str) -> Any:
    for ep in _entry_points(group):
        if ep.name == name:
            return ep
    raise PluginError(f"no plugin named {name!r} in entry-point group {group!r}")


def _distro(ep: Any) -> tuple[str, str]:
    distro = getattr(ep, "distro", None)
    if distro is None:
        return "<unknown distribution>", "?"
    return str(distro.name), str(getattr(distro, "version", "?"))


def available(group: str) -> list[str]:
    """Names registered in ``group`` by installed distributions (nothing is imported)."""
    return sorted({ep.name for ep in _entry_points(group) if (group, ep.name) not in _failures})


def distribution_of(group: str, name: str) -> str:
    try:
        return _distro(_find(group, name))[0]
    except PluginError:
        return "<unknown distribution>"


def load(group: str, name: str, registry: Any | None = None) -> Any:
    """Import plugin ``name`` of ``group``; check it against ``registry``'s interface if given.

    Raises :class:`PluginError` (after emitting a :class:`PluginWarning`) naming the distribution
    and the reason when the plugin cannot be used.
    """
    ep = _find(group, name)
    dist, version = _distro(ep)
    try:
        obj = ep.load()
        if registry is not None:
            registry.check_implements(obj)
    except Exception as exc:  # any failure of third-party code is isolated here
        reason = f"{type(exc).__name__}: {exc}"
        _failures[(group, name)] = reason
        message = (f"plugin {name!r} (group {group}) from distribution {dist} {version} could not be loaded "
                   f"and is disabled: {reason}")
        warnings.warn(message, PluginWarning, stacklevel=2)
        raise PluginError(message) from exc
    _loaded.add((group, name))
    return obj


def list_plugins(groups: list[str] | None = None) -> list[PluginInfo]:
    """Every installed entry point in the vlakit groups, with its load status in this process."""
    from vlakit.registry import KINDS, RECIPES_GROUP

    groups = groups or [info.group for info in KINDS.values()] + [RECIPES_GROUP]
    out: list[PluginInfo] = []
    for group in groups:
        for ep in _entry_points(group):
            dist, version = _distro(ep)
            key = (group, ep.name)
            status = ("failed: " + _failures[key]) if key in _failures else (
                "loaded" if key in _loaded else "not loaded")
            target = ep.module_name + (f":{ep.object_name}" if ep.object_name else "")
            out.append(PluginInfo(ep.name, group, target, dist, version, status))
    return out


def recipe_folders() -> list[tuple[str, Path]]:
    """(distribution, folder) for every installed ``vlakit.recipes`` entry point that loads."""
    from vlakit.registry import RECIPES_GROUP

    folders: list[tuple[str, Path]] = []
    for ep in _entry_points(RECIPES_GROUP):
        try:
            obj = load(RECIPES_GROUP, ep.name)
            folder = _as_folder(obj)
            if not folder.is_dir():
                raise PluginError(f"recipe folder {folder} does not exist")
        except Exception as exc:
            if not isinstance(exc, PluginError):
                dist, _ = _distro(ep)
                warnings.warn(f"recipe folder plugin {ep.name!r} from {dist} is unusable: {exc}",
                              PluginWarning, stacklevel=2)
            continue
        folders.append((_distro(ep)[0], folder))
    return folders


def _as_folder(obj: Any) -> Path:
    if isinstance(obj, types.ModuleType):
        if obj.__file__ is None:  # namespace package
            return Path(next(iter(obj.__path__)))
        return Path(obj.__file__).parent
    if callable(obj):
        obj = obj()
    return Path(obj)


def reset_cache() -> None:
    """Forget scanned entry points and load failures/successes (tests install and remove fake plugins)."""
    _scanned.clear()
    _failures.clear()
    _loaded.clear()
