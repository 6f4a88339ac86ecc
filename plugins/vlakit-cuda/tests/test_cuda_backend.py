"""Tests of the cuda backend plugin. GPU tests skip without a GPU; discovery tests always run."""

from __future__ import annotations

import pytest
import torch
from vlakit_cuda.backend import CudaBackend

from vlakit.backends import BackendUnavailableError, backend_statuses, select_backend
from vlakit.registry import BACKENDS

HAS_GPU = torch.cuda.is_available()


def test_entry_point_registers_cuda_backend():
    assert "cuda" in BACKENDS.keys()
    assert BACKENDS.get("cuda") is CudaBackend
    assert BACKENDS.origin("cuda").replace("_", "-") == "vlakit-cuda"


def test_status_matches_torch():
    status = {s.key: s for s in backend_statuses()}["cuda"]
    assert status.available == HAS_GPU
    assert status.priority > {s.key: s for s in backend_statuses()}["cpu"].priority


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU error message")
def test_unavailable_cuda_fails_with_reason_and_alternatives():
    with pytest.raises(BackendUnavailableError) as info:
        select_backend("cuda")
    text = str(info.value)
    assert "'cuda'" in text and "not available" in text and "cpu" in text


@pytest.mark.skipif(HAS_GPU, reason="without a GPU auto must fall back to cpu")
def test_auto_without_gpu_is_cpu():
    assert select_backend("auto").device == "cpu"


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
def test_auto_prefers_cuda_and_runs_a_matmul():
    backend = select_backend("auto")
    assert backend.device.startswith("cuda") and backend.lightning_accelerator == "gpu"
    x = torch.randn(64, 64, device=backend.device)
    with backend.autocast():
        y = x @ x
    assert y.device.type == "cuda" and torch.isfinite(y).all()


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
def test_precision_override():
    assert select_backend("cuda", precision="32-true").precision == "32-true"
