"""``backend: {type: auto}`` -- the best available installed backend, by priority."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

from vlakit.config import ComponentConfig
from vlakit.interfaces.backend import ComputeBackend
from vlakit.registry import BACKENDS


class AutoConfig(ComponentConfig):
    """Pick the available backend with the highest ``priority`` (a GPU plugin beats ``cpu``).

    ``precision: auto`` lets the chosen backend decide; any other value is passed on to it.
    """

    type: Literal["auto"] = "auto"
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "auto"

    def build(self, *, precision: str | None = None) -> ComputeBackend:
        from vlakit.backends import best_available

        key = best_available()
        cfg = BACKENDS.config_class(key)()
        chosen = precision if precision not in (None, "auto") else self.precision
        return cfg.build(precision=None if chosen == "auto" else chosen)


@BACKENDS.register
class AutoBackend(ComputeBackend):
    """Registered so that ``auto`` is a valid recipe type; building it returns the chosen backend.

    Instances delegate to that backend (constructed only if someone builds this class directly).
    """

    Config = AutoConfig
    priority = -1  # never chosen by `auto` itself

    def __init__(self, *, inner: ComputeBackend) -> None:
        self.inner = inner

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return True, "auto always resolves to an available backend (cpu at worst)"

    @property
    def device(self) -> str:
        return self.inner.device

    @property
    def precision(self) -> str:
        return self.inner.precision

    @property
    def lightning_accelerator(self) -> str:
        return self.inner.lightning_accelerator

    @property
    def process_group_backend(self) -> str:
        return self.inner.process_group_backend

    def autocast(self) -> AbstractContextManager:
        return self.inner.autocast()
