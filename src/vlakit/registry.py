"""One registry per component kind.

A component registers itself at its definition site::

    class SiglipConfig(ComponentConfig):
        type: Literal["siglip"] = "siglip"
        ...

    @VISION_ENCODERS.register
    class SiglipEncoder(VisionEncoder):
        Config = SiglipConfig

The key is the ``type`` literal of the component's ``Config``. Built-in components are imported
the first time a registry is asked for anything (by importing its ``builtin_package``); plugin
components are imported only when their key is requested (see :mod:`vlakit.plugins`).
"""

from __future__ import annotations

import importlib
import inspect
import threading
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vlakit.errors import RegistryError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class KindInfo:
    """Static facts about one kind of component."""

    kind: str  #: registry name, e.g. "vision_encoders"
    title: str  #: human name, e.g. "vision encoder"
    interface: str  #: "module:Class" of the ABC every component of this kind implements
    builtin_package: str | None  #: package whose import registers the built-ins
    group: str  #: entry-point group for plugins


class Registry(Generic[T]):
    """Maps ``type`` keys to component classes of one kind."""

    def __init__(self, info: KindInfo) -> None:
        self.info = info
        self._entries: dict[str, type[T]] = {}
        self._origin: dict[str, str] = {}  # key -> "builtin" or distribution name
        self._builtins_loaded = False
        self._lock = threading.RLock()

    # -- registration -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.info.kind

    def interface(self) -> type:
        module, _, name = self.info.interface.partition(":")
        return getattr(importlib.import_module(module), name)

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: register ``cls`` under its ``Config.type`` literal.

        Fails loudly on a duplicate key, a missing Config, or a class that does not implement the
        kind's interface.
        """
        config_cls = getattr(cls, "Config", None)
        if config_cls is None:
            raise RegistryError(f"{cls.__qualname__} has no `Config` class; cannot register it as a "
                                f"{self.info.title}")
        key = config_cls.type_key()
        self.check_implements(cls)
        with self._lock:
            existing = self._entries.get(key)
            if existing is not None and existing is not cls:
                raise RegistryError(
                    f"duplicate {self.info.title} key {key!r}: already registered by "
                    f"{existing.__module__}.{existing.__qualname__}, now again by "
                    f"{cls.__module__}.{cls.__qualname__}"
                )
            self._entries[key] = cls
            self._origin.setdefault(key, _origin_of(cls))
        return cls

    def check_implements(self, cls: type) -> None:
        """Raise if ``cls`` is not a concrete subclass of this kind's interface."""
        iface = self.interface()
        if not (inspect.isclass(cls) and issubclass(cls, iface)):
            raise RegistryError(f"{cls!r} does not subclass {iface.__module__}.{iface.__qualname__}, "
                                f"the {self.info.title} interface")
        if inspect.isabstract(cls):
            missing = sorted(getattr(cls, "__abstractmethods__", ()))
            raise RegistryError(f"{cls.__qualname__} does not implement {', '.join(missing)} of the "
                                f"{self.info.title} interface")

    # -- lookup -------------------------------------------------------------------------------
    def _ensure_builtins(self) -> None:
        if self._builtins_loaded or self.info.builtin_package is None:
            return
        with self._lock:
            if self._builtins_loaded:
                return
            self._builtins_loaded = True
            importlib.import_module(self.info.builtin_package)

    def builtin_keys(self) -> list[str]:
        self._ensure_builtins()
        return sorted(k for k, o in self._origin.items() if o == "builtin")

    def keys(self) -> list[str]:
        """Every known key: built-ins, registered classes and installed plugins (not imported)."""
        from vlakit import plugins

        self._ensure_builtins()
        return sorted(set(self._entries) | set(plugins.available(self.info.group)))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.keys()

    def get(self, key: str) -> type[T]:
        """The class registered under ``key``; imports a plugin if that is where the key lives."""
        from vlakit import plugins

        self._ensure_builtins()
        if key in self._entries:
            return self._entries[key]
        if key in plugins.available(self.info.group):
            obj = plugins.load(self.info.group, key, self)
            with self._lock:
                if key not in self._entries:
                    self.register(obj)
                self._origin[key] = plugins.distribution_of(self.info.group, key)
            return self._entries[key]
        raise self.unknown(key)

    def config_class(self, key: str) -> type:
        return self.get(key).Config  # type: ignore[attr-defined]

    def origin(self, key: str) -> str:
        from vlakit import plugins

        self._ensure_builtins()
        if key in self._origin:
            return self._origin[key]
        return plugins.distribution_of(self.info.group, key)

    def unknown(self, key: Any) -> RegistryError:
        valid = self.keys()
        return RegistryError(
            f"unknown {self.info.title} type {key!r}. Valid types: {', '.join(valid) or '(none)'}."
            + did_you_mean(str(key), valid)
        )

    def unregister(self, key: str) -> None:
        """Remove ``key`` (for tests that register throwaway components)."""
        with self._lock:
            self._entries.pop(key, None)
            self._origin.pop(key, None)

    def __repr__(self) -> str:
        return f"Registry({self.info.kind!r}, {len(self._entries)} loaded)"


def _origin_of(cls: type) -> str:
    return "builtin" if cls.__module__.startswith("vlakit.") else cls.__module__.split(".")[0]


def _kind(kind: str, title: str, interface: str, builtin: str | None) -> KindInfo:
    return KindInfo(kind=kind, title=title, interface=interface, builtin_package=builtin,
                    group=f"vlakit.{kind}")


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in [
        _kind("vision_encoders", "vision encoder", "vlakit.interfaces.vision:VisionEncoder",
              "vlakit.components.vision"),
        _kind("language_backbones", "language backbone", "vlakit.interfaces.language:LanguageBackbone",
              "vlakit.components.language"),
        _kind("action_tokenizers", "action tokenizer",
              "vlakit.interfaces.action_tokenizer:ActionTokenizer", "vlakit.components.action_tokenizers"),
        _kind("action_heads", "action head", "vlakit.interfaces.action_head:ActionHead",
              "vlakit.components.action_heads"),
        _kind("state_encoders", "state encoder", "vlakit.interfaces.state:StateEncoder",
              "vlakit.components.state"),
        _kind("time_conditionings", "time conditioning",
              "vlakit.interfaces.time_conditioning:TimeConditioning", "vlakit.components.time_conditioning"),
        _kind("text_tokenizers", "text tokenizer", "vlakit.interfaces.text_tokenizer:TextTokenizer",
              "vlakit.components.text"),
        _kind("backends", "compute backend", "vlakit.interfaces.backend:ComputeBackend", "vlakit.backends"),
        _kind("envs", "environment", "vlakit.interfaces.env:Env", "vlakit.envs"),
        _kind("data_sources", "data source", "vlakit.interfaces.data_source:DataSource",
              "vlakit.data.sources"),
        _kind("vision_tasks", "vision pre-training task", "vlakit.interfaces.vision_task:VisionTask",
              "vlakit.data.vision_tasks"),
    ]
}

#: Entry-point group for plugin recipe folders (not a component registry).
RECIPES_GROUP = "vlakit.recipes"

VISION_ENCODERS: Registry = Registry(KINDS["vision_encoders"])
LANGUAGE_BACKBONES: Registry = Registry(KINDS["language_backbones"])
ACTION_TOKENIZERS: Registry = Registry(KINDS["action_tokenizers"])
ACTION_HEADS: Registry = Registry(KINDS["action_heads"])
STATE_ENCODERS: Registry = Registry(KINDS["state_encoders"])
TIME_CONDITIONINGS: Registry = Registry(KINDS["time_conditionings"])
TEXT_TOKENIZERS: Registry = Registry(KINDS["text_tokenizers"])
BACKENDS: Registry = Registry(KINDS["backends"])
ENVS: Registry = Registry(KINDS["envs"])
DATA_SOURCES: Registry = Registry(KINDS["data_sources"])
VISION_TASKS: Registry = Registry(KINDS["vision_tasks"])

REGISTRIES: dict[str, Registry] = {
    r.kind: r
    for r in [VISION_ENCODERS, LANGUAGE_BACKBONES, ACTION_TOKENIZERS, ACTION_HEADS, STATE_ENCODERS,
              TIME_CONDITIONINGS, TEXT_TOKENIZERS, BACKENDS, ENVS, DATA_SOURCES, VISION_TASKS]
}


def registry(kind: str) -> Registry:
    """The registry for ``kind`` (e.g. ``"vision_encoders"``), with a helpful error if unknown."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise RegistryError(f"unknown component kind {kind!r}. Valid kinds: {', '.join(REGISTRIES)}."
                            + did_you_mean(kind, REGISTRIES)) from None
