"""The wheel carries what a pip-installed vlakit needs: recipes and the shipped tokenizer."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_recipes_and_assets(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("vlakit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(REPO / "recipes").as_posix() for p in (REPO / "recipes").rglob("*.yaml")}
    assert shipped, "no recipes in the source tree"
    for rel in shipped:
        assert f"vlakit/_recipes/{rel}" in names
    assert any(n.startswith("vlakit/assets/text_tokenizer/") for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)


def test_public_api_is_lazy_and_complete() -> None:
    code = ("import sys, vlakit; assert 'torch' not in sys.modules; "
            "assert callable(vlakit.load_recipe); print(sorted(vlakit.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "build_policy" in out.stdout and "load_policy" in out.stdout
