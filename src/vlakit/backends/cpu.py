"""The built-in ``cpu`` backend: fp32, or bf16 mixed precision where the CPU has native bf16 math."""

from __future__ import annotations

import contextlib
import functools
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal

from vlakit.config import ComponentConfig
from vlakit.errors import VlakitError
from vlakit.interfaces.backend import ComputeBackend
from vlakit.registry import BACKENDS

#: CPU flags (Linux /proc/cpuinfo) that mean bf16 matrix products run natively (AVX512-BF16, AMX).
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_bf16_support() -> tuple[bool, str]:
    """(supported, why): whether this CPU runs bf16 matmuls natively (fast), judged by its flags."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False, "cannot read /proc/cpuinfo to detect bf16 support (non-Linux host)"
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    found = [f for f in _BF16_FLAGS if f in flags]
    if found:
        return True, f"CPU flags {', '.join(found)}"
    return False, f"the CPU lacks {' and '.join(_BF16_FLAGS)} (bf16 would be emulated and slower than fp32)"


class CpuConfig(ComponentConfig):
    """``backend: {type: cpu, precision: auto}``.

    ``precision: auto`` picks ``bf16-mixed`` when the CPU has native bf16 (about 3x the fp32 matmul
    throughput on AVX512-BF16 parts) and ``32-true`` otherwise. ``threads`` caps torch's intra-op
    threads (None leaves torch's default).
    """

    type: Literal["cpu"] = "cpu"
    precision: Literal["auto", "32-true", "bf16-mixed"] = "auto"
    threads: int | None = None

    def build(self, *, precision: str | None = None) -> CpuBackend:
        """The backend; ``precision`` (a Lightning string other than "auto") overrides the config's."""
        chosen = precision if precision not in (None, "auto") else self.precision
        if chosen == "auto":
            chosen = "bf16-mixed" if cpu_bf16_support()[0] else "32-true"
        if chosen not in ("32-true", "bf16-mixed"):
            raise VlakitError(f"the cpu backend supports precision 32-true or bf16-mixed, not {chosen!r}")
        if chosen == "bf16-mixed":
            ok, why = cpu_bf16_support()
            if not ok:
                raise VlakitError(f"cpu backend: bf16-mixed was requested but {why}; use precision "
                                  f"32-true or auto")
        return CpuBackend(precision=chosen, threads=self.threads)


@BACKENDS.register
class CpuBackend(ComputeBackend):
    """Runs on the host CPU; Lightning accelerator ``cpu``; DDP over gloo."""

    Config = CpuConfig
    priority = 0

    def __init__(self, *, precision: str = "32-true", threads: int | None = None) -> None:
        self._precision = precision
        self.threads = threads
        if threads is not None:
            import torch

            torch.set_num_threads(threads)

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return True, "the host CPU is always available"

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def lightning_accelerator(self) -> str:
        return "cpu"

    def autocast(self) -> AbstractContextManager:
        if self._precision == "bf16-mixed":
            import torch

            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()
