"""The built-in ``cpu`` backend: fp32, or bf16 mixed precision where the CPU has native bf16 math."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import platform
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


#: glibc ``mallopt`` parameters (malloc.h) and the values :func:`glibc_keep_freed_memory` sets
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_KEEP_SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))


@functools.lru_cache(maxsize=1)
def glibc_keep_freed_memory() -> tuple[bool, str]:
    """Make glibc's malloc keep freed blocks of up to 32 MiB for reuse; (applied, why).

    By default glibc serves large blocks with ``mmap`` and trims the heap after frees, so every
    training step asks the kernel for fresh zeroed pages again for its activation tensors: about
    6,000 page faults and 20 % of a ``pi05_tabletop`` step (146 -> 115 ms measured, page faults
    6,353 -> ~0 per step). With these settings (mmap threshold 32 MiB, glibc's maximum; trim
    threshold 1 GiB) freed memory stays in the process and is reused; the resident size stays
    near its peak instead of shrinking between steps. Process-wide, applied once; a no-op on other
    C libraries (macOS, musl), which say so in ``why``.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False, f"not glibc ({platform.system()} {platform.libc_ver()[0] or 'unknown libc'})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:
        return False, f"cannot reach glibc's mallopt: {exc}"
    failed = [param for param, value in _KEEP_SETTINGS if mallopt(param, value) != 1]
    if failed:
        return False, f"glibc rejected mallopt parameters {failed}"
    return True, "glibc keeps freed blocks up to 32 MiB (mmap threshold), trims above 1 GiB"


class CpuConfig(ComponentConfig):
    """``backend: {type: cpu, precision: auto}``.

    ``precision: auto`` picks ``bf16-mixed`` when the CPU has native bf16 (about 3x the fp32 matmul
    throughput on AVX512-BF16 parts) and ``32-true`` otherwise. ``threads`` caps torch's intra-op
    threads (None leaves torch's default). ``keep_freed_memory`` (default on) stops glibc's malloc
    from handing activation memory back to the kernel between steps, which otherwise costs a CPU
    training step about 20 % in page faults (:func:`glibc_keep_freed_memory`).
    """

    type: Literal["cpu"] = "cpu"
    precision: Literal["auto", "32-true", "bf16-mixed"] = "auto"
    threads: int | None = None
    keep_freed_memory: bool = True

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
        return CpuBackend(precision=chosen, threads=self.threads, keep_freed_memory=self.keep_freed_memory)


@BACKENDS.register
class CpuBackend(ComputeBackend):
    """Runs on the host CPU; Lightning accelerator ``cpu``; DDP over gloo."""

    Config = CpuConfig
    priority = 0

    def __init__(self, *, precision: str = "32-true", threads: int | None = None,
                 keep_freed_memory: bool = False) -> None:
        self._precision = precision
        self.threads = threads
        #: (applied, why) of :func:`glibc_keep_freed_memory`, or None when not asked for
        self.malloc: tuple[bool, str] | None = glibc_keep_freed_memory() if keep_freed_memory else None
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

    def describe(self) -> str:
        kept = "; malloc keeps freed memory" if self.malloc and self.malloc[0] else ""
        return f"cpu ({self._precision}{kept})"
