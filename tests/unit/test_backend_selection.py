"""Compute backends: cpu precision choice, auto selection by priority, unavailable-backend errors."""

from __future__ import annotations

import platform
import subprocess
import sys
from typing import Literal

import pytest
import torch

from vlakit.backends import BackendUnavailableError, backend_statuses, best_available, select_backend
from vlakit.backends import cpu as cpu_mod
from vlakit.config import ComponentConfig
from vlakit.errors import RegistryError, VlakitError
from vlakit.interfaces.backend import ComputeBackend
from vlakit.recipe.schema import Recipe
from vlakit.registry import BACKENDS


def _fake_backend(key: str, *, available: bool, priority: int) -> type[ComputeBackend]:
    class Cfg(ComponentConfig):
        type: Literal[key] = key  # type: ignore[valid-type]

        def build(self, *, precision=None):
            return Fake()

    class Fake(ComputeBackend):
        Config = Cfg

        @classmethod
        def availability(cls):
            return available, "fake accelerator is " + ("present" if available else "unplugged")

        device = property(lambda self: "cpu")
        precision = property(lambda self: "32-true")
        lightning_accelerator = property(lambda self: "cpu")

        def autocast(self):
            return torch.autocast("cpu", enabled=False)

    Fake.priority = priority
    Fake.__qualname__ = Fake.__name__ = f"Fake_{key}"
    return Fake


@pytest.fixture
def fake_backends():
    keys = []

    def add(key, **kw):
        BACKENDS.register(_fake_backend(key, **kw))
        keys.append(key)

    yield add
    for k in keys:
        BACKENDS.unregister(k)


def test_cpu_precision_follows_bf16_support(monkeypatch):
    cpu_mod.cpu_bf16_support.cache_clear()
    monkeypatch.setattr(cpu_mod, "cpu_bf16_support", lambda: (True, "flags"))
    assert select_backend("cpu").precision == "bf16-mixed"
    assert select_backend("cpu", precision="32-true").precision == "32-true"
    monkeypatch.setattr(cpu_mod, "cpu_bf16_support", lambda: (False, "the CPU lacks avx512_bf16"))
    assert select_backend("cpu").precision == "32-true"
    with pytest.raises(VlakitError, match="avx512_bf16"):
        select_backend("cpu", precision="bf16-mixed")
    with pytest.raises(VlakitError, match="16-mixed"):
        select_backend("cpu", precision="16-mixed")


def test_bf16_detection_reads_cpu_flags(tmp_path, monkeypatch):
    real = cpu_mod.Path

    def fake_path(p):
        return real(tmp_path / "cpuinfo") if p == "/proc/cpuinfo" else real(p)

    for flags, expected in [("fpu avx512f avx512_bf16 sse", True), ("fpu avx2 sse", False), ("amx_bf16", True)]:
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(cpu_mod, "Path", fake_path)
        cpu_mod.cpu_bf16_support.cache_clear()
        assert cpu_mod.cpu_bf16_support()[0] is expected
    cpu_mod.cpu_bf16_support.cache_clear()


def test_cpu_autocast_runs_bf16_matmuls():
    backend = cpu_mod.CpuBackend(precision="bf16-mixed")
    x = torch.randn(8, 8)
    with backend.autocast():
        assert (x @ x).dtype == torch.bfloat16
    with cpu_mod.CpuBackend(precision="32-true").autocast():
        assert (x @ x).dtype == torch.float32


_CHURN = """
import ctypes, resource, sys, torch
from vlakit.backends import cpu

def churn():  # a training step's pattern: many large tensors alive at once, then all freed
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(10):
        held = [torch.ones((1 << 18) * (1 + (j + i) % 5)) for j in range(12)]
        del held
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

libc = ctypes.CDLL("libc.so.6")  # glibc's thresholds before it adapts them: 128 KiB mmap and trim
assert libc.mallopt(-3, 128 << 10) == 1 and libc.mallopt(-1, 128 << 10) == 1
churn()
before = churn()
backend = cpu.CpuConfig(type="cpu").build()  # keep_freed_memory is the default
churn()
print(before, churn(), backend.malloc[0], backend.describe())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_cpu_backend_keeps_freed_memory_out_of_page_faults():
    """Each step's activations would otherwise come back as fresh zeroed pages (20 % of a CPU step)."""
    out = subprocess.run([sys.executable, "-c", _CHURN], capture_output=True, text=True, check=True).stdout
    before, after, applied, described = out.split(maxsplit=3)
    assert applied == "True" and "keeps freed memory" in described
    assert int(before) > 1000  # the churn pages memory in and out under glibc's small thresholds
    assert int(after) < int(before) // 20


def test_keep_freed_memory_can_be_turned_off():
    backend = select_backend(cpu_mod.CpuConfig(keep_freed_memory=False))
    assert backend.malloc is None and "malloc" not in backend.describe()


def test_auto_picks_highest_available_priority(fake_backends):
    top = max(s.priority for s in backend_statuses())  # above any real backend installed here (cuda on a GPU box)
    fake_backends("zz_fast", available=True, priority=top + 10)
    fake_backends("zz_faster", available=False, priority=top + 20)
    assert best_available() == "zz_fast"
    assert type(select_backend("auto")).__name__ == "Fake_zz_fast"
    statuses = {s.key: s for s in backend_statuses()}
    assert statuses["zz_faster"].available is False and "unplugged" in statuses["zz_faster"].reason
    assert "auto" not in statuses


def test_auto_is_cpu_when_nothing_better():
    if any(s.available and s.key != "cpu" for s in backend_statuses()):
        pytest.skip("an accelerator backend is available here")
    assert select_backend("auto").device == "cpu"


def test_unavailable_backend_says_why_and_lists_available(fake_backends):
    fake_backends("zz_gpu", available=False, priority=90)
    with pytest.raises(BackendUnavailableError) as info:
        select_backend("zz_gpu")
    text = str(info.value)
    assert "'zz_gpu'" in text and "unplugged" in text and "cpu" in text.split("Available backends:")[1]


def test_unknown_backend_names_closest():
    with pytest.raises(RegistryError, match="Did you mean 'cpu'"):
        select_backend("cpuu")


def test_recipe_backend_field_validates_cpu_options():
    model = {"vision": "conv", "language": "gemma", "state": "discrete_text", "heads": {"flow_matching": {}}}
    r = Recipe.model_validate({"name": "x", "model": model, "backend": {"type": "cpu", "precision": "32-true"}})
    assert select_backend(r.backend).precision == "32-true"
    with pytest.raises(Exception, match="precision"):
        Recipe.model_validate({"name": "x", "model": model, "backend": {"type": "cpu", "precision": "fp8"}})
