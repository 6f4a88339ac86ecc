"""Compute backend interface: where and how tensors run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import ClassVar


class ComputeBackend(ABC):
    """Device, precision and Lightning settings for one kind of hardware.

    ``precision`` is a Lightning precision string (``"32-true"``, ``"bf16-mixed"``, ...). A backend
    is built from its Config (``Config.build() -> ComputeBackend``); building one that is not
    available here raises (see :func:`vlakit.backends.select_backend`).
    """

    Config: ClassVar[type]

    #: Selection priority for ``auto`` (higher wins among available backends).
    priority: ClassVar[int] = 0

    @classmethod
    @abstractmethod
    def availability(cls) -> tuple[bool, str]:
        """(available, reason): whether this backend can run here, and why not if it cannot."""

    @property
    @abstractmethod
    def device(self) -> str:
        """torch device string, e.g. ``"cpu"`` or ``"cuda:0"``."""

    @property
    @abstractmethod
    def precision(self) -> str:
        """Lightning precision string."""

    @property
    @abstractmethod
    def lightning_accelerator(self) -> str:
        """Lightning accelerator name (``"cpu"``, ``"gpu"``)."""

    @abstractmethod
    def autocast(self) -> AbstractContextManager:
        """Context manager for inference under this backend's precision."""

    @property
    def process_group_backend(self) -> str:
        """torch.distributed backend for DDP/FSDP (``"gloo"`` on CPU, ``"nccl"`` on CUDA)."""
        return "gloo"

    def describe(self) -> str:
        """One line for logs, e.g. ``"cpu (bf16-mixed)"``."""
        return f"{self.device} ({self.precision})"
