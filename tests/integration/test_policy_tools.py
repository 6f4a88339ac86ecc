"""Tools around a trained policy folder: `vlakit inspect`, serving a real policy, `vlakit ablate`."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from vlakit.cli.main import app
from vlakit.cli.serve import _ServingAdapter
from vlakit.policy_io import load_policy
from vlakit.recipe.load import load_recipe
from vlakit.registry import ENVS
from vlakit.serving.client import PolicyClient, ServerError
from vlakit.serving.server import PolicyServer
from vlakit.training.run import train_recipe

HERE = Path(__file__).resolve().parent
STUDY = HERE.parent / "recipes" / "study_tiny.yaml"
runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    recipe = load_recipe("pi05_tabletop_tiny", [f"data.cache_dir={cache}", "backend.type=cpu"])
    out = tmp_path_factory.mktemp("run")
    result = train_recipe(recipe, out_dir=out, console=Console(file=open("/dev/null", "w")),
                          progress=False)
    return result.policy_dir


def test_inspect_counts_parameters_from_the_header(policy_dir: Path) -> None:
    result = runner.invoke(app, ["inspect", str(policy_dir)], env=WIDE)
    assert result.exit_code == 0, result.output
    loaded = load_policy(policy_dir, backend="cpu")
    total = sum(p.numel() for p in loaded.policy.parameters())
    assert f"{total:,}" in result.output
    assert "tabletop_gripper" in result.output


def test_inspect_rejects_a_folder_that_is_not_a_policy(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path)], env=WIDE)
    assert result.exit_code == 2 and "model.safetensors" in result.output


def test_serving_a_real_policy_round_trip(policy_dir: Path) -> None:
    loaded = load_policy(policy_dir, backend="cpu")
    server = PolicyServer(_ServingAdapter(loaded), host="127.0.0.1", port=0)
    loop = asyncio.new_event_loop()
    ready, stop = asyncio.Event(), asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve(ready=ready, stop=stop)),
                              daemon=True)
    thread.start()
    for _ in range(250):
        if ready.is_set():
            break
        thread.join(0.02)
    try:
        env = ENVS.get("tabletop")(ENVS.config_class("tabletop")(split="train"))
        obs = env.reset(seed=0)
        with PolicyClient(f"ws://127.0.0.1:{server.port}") as client:
            assert client.metadata["horizon"] == loaded.recipe.model.horizon
            reply = client.infer({"images": obs.images, "state": obs.state, "prompt": obs.prompt,
                                  "robot_type": env.robot_type})
            assert reply["actions"].shape == (loaded.recipe.model.horizon, env.action_dim)
            assert np.isfinite(reply["actions"]).all()
            with pytest.raises(ServerError, match="robot"):  # an unknown embodiment is an error, not actions
                client.infer({"images": obs.images, "state": obs.state, "prompt": obs.prompt,
                              "robot_type": "no_such_robot"})
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)


def test_ablate_dry_run_validates_every_variant() -> None:
    result = runner.invoke(app, ["ablate", str(STUDY), "--dry-run"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "model.vision.type=siglip" in result.output and "all variants are valid" in result.output


def test_ablate_reports_every_invalid_variant(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbase: pi05_tabletop_tiny\nvariants:\n  a: {model: {vision: {type: convv}}}\n"
                   "  b: {model: {horizon: -3}}\n")
    result = runner.invoke(app, ["ablate", str(bad), "--dry-run"], env=WIDE)
    assert result.exit_code == 2
    assert "[variant a]" in result.output and "Did you mean 'conv'" in result.output
    assert "[variant b]" in result.output and "model.horizon" in result.output


@pytest.mark.slow
def test_ablate_trains_and_compares_variants(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["ablate", str(STUDY), "--out", str(tmp_path / "study"),
                                 "--set", f"data.cache_dir={cache}", "--set", "backend.type=cpu"], env=WIDE)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "study" / "ablation.json").read_text())
    assert [v["variant"] for v in summary["variants"]] == ["base", "siglip"]
    params = [v["parameters"] for v in summary["variants"]]
    assert params[0] != params[1]  # the vision encoder really was swapped
    for v in summary["variants"]:
        assert 0.0 <= v["splits"]["train"]["success"] <= 1.0
    assert (tmp_path / "study" / "ablation.md").is_file()
