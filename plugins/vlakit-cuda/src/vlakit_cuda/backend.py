"""The ``cuda`` backend: one or more NVIDIA GPUs, bf16/fp16 mixed precision, NCCL for DDP/FSDP."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal

from vlakit.config import ComponentConfig
from vlakit.errors import VlakitError
from vlakit.interfaces.backend import ComputeBackend


class CudaConfig(ComponentConfig):
    """``backend: {type: cuda, device_index: 0, precision: auto}``.

    ``precision: auto`` -> ``bf16-mixed`` where the GPU supports bf16, else ``16-mixed``.
    ``allow_tf32`` enables TF32 matmuls for the fp32 parts.
    """

    type: Literal["cuda"] = "cuda"
    device_index: int = 0
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "auto"
    allow_tf32: bool = True

    def build(self, *, precision: str | None = None) -> CudaBackend:
        ok, why = CudaBackend.availability()
        if not ok:
            raise VlakitError(f"cuda backend unavailable: {why}")
        import torch

        count = torch.cuda.device_count()
        if not 0 <= self.device_index < count:
            raise VlakitError(f"cuda backend: device_index {self.device_index} is out of range; "
                              f"{count} GPU(s) visible")
        chosen = precision if precision not in (None, "auto") else self.precision
        if chosen == "auto":
            chosen = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        if chosen.startswith("bf16") and not torch.cuda.is_bf16_supported():
            raise VlakitError(f"cuda backend: {chosen} requested but GPU "
                              f"{torch.cuda.get_device_name(self.device_index)!r} has no bf16 support")
        if self.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return CudaBackend(device_index=self.device_index, precision=chosen)


class CudaBackend(ComputeBackend):
    """NVIDIA GPUs through torch.cuda; Lightning accelerator ``gpu``."""

    Config = CudaConfig
    priority = 100

    def __init__(self, *, device_index: int = 0, precision: str = "bf16-mixed") -> None:
        self.device_index = device_index
        self._precision = precision

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a dependency
            return False, f"torch is not importable: {exc}"
        if torch.version.cuda is None:
            return False, f"this torch build ({torch.__version__}) has no CUDA support"
        if not torch.cuda.is_available():
            return False, "torch has CUDA support but no GPU is visible (check drivers / CUDA_VISIBLE_DEVICES)"
        return True, f"{torch.cuda.device_count()} GPU(s): {torch.cuda.get_device_name(0)}"

    @property
    def device(self) -> str:
        return f"cuda:{self.device_index}"

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def lightning_accelerator(self) -> str:
        return "gpu"

    @property
    def process_group_backend(self) -> str:
        return "nccl"

    def autocast(self) -> AbstractContextManager:
        import torch

        if self._precision in ("bf16-mixed", "bf16-true"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self._precision == "16-mixed":
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()
