"""Tools around a trained policy folder: `vlakit inspect`, serving a real policy, `vlakit ablate`."""

from __future__ import annotations

import asyncio
import importlib.util
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
BENCHMARKS = HERE.parents[1] / "benchmarks"
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


def _benchmark(name: str):
    """Import ``benchmarks/<name>.py`` by path (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"vlakit_benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(output: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]


def test_first_actions_benchmark_scores_every_split_and_family(policy_dir: Path, capsys) -> None:
    assert _benchmark("first_actions").main([str(policy_dir), "--episodes", "2", "--samples", "2",
                                              "--families", "reach,push"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[:2] for r in rows] == [["train", "reach"], ["train", "push"], ["unseen", "reach"], ["unseen", "push"]]
    for row in rows:
        assert -1.0 <= float(row[2]) <= 1.0 and -1.0 <= float(row[3]) <= 1.0 and 0.0 <= float(row[4]) <= 1.0


def test_grasp_closes_measures_the_close_where_the_jaws_shut(policy_dir: Path, capsys) -> None:
    from vlakit.evaluation.evaluator import make_env

    bench = _benchmark("grasp_closes")
    spec = load_recipe("pi05_tabletop_tiny").eval.env
    env = make_env(type(spec).model_validate({**spec.model_dump(), "families": ["pick_place"]}), split="train")
    closes: list[tuple[float, bool]] = []
    bench.watch_closes(env, closes)
    env.reset(seed=0)
    done = False
    while not done:  # the scripted expert closes on the object (within 0.012) and grasps it, once
        _obs, _r, terminated, truncated, _info = env.step(env.expert_action())
        done = terminated or truncated
    assert len(closes) == 1 and closes[0][0] <= 0.012 and closes[0][1]
    env.reset(seed=1)
    start = float(np.linalg.norm(env.world.positions[env.task.target] - env.world.gripper))
    env.step(np.array([0.0, 0.0, 1.0]))  # close where it starts: a miss, recorded with its distance
    assert closes[1] == (pytest.approx(start), False) and start > bench.GRASP_RADIUS
    assert bench.words("pick up the red cube at 3 5") == "pick up the red cube"
    assert bench.words("place the red cube in the blue zone to 7 2") == "place the red cube in the blue zone"

    assert bench.main([str(policy_dir), "--episodes", "2", "--split", "train"]) == 0
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert [r[0] for r in rows][-1] == "all" and len(rows) == len(bench.BANDS)
    counts = [(int(r[1]), int(r[2])) for r in rows]
    assert sum(c for c, _ in counts[:-1]) == counts[-1][0] and sum(g for _, g in counts[:-1]) == counts[-1][1]
    assert all(g == 0 for _, g in counts[1:-1])  # nothing is grasped beyond the grasp radius
    assert "after a miss" in out


def test_first_actions_reads_the_point_head_where_there_is_one(tmp_path: Path, capsys) -> None:
    recipe = load_recipe("pi05_tabletop_tiny", [f"data.cache_dir={tmp_path / 'cache'}", "backend.type=cpu",
                                                "model.heads.flow_matching.point_weight=1.0",
                                                "train.vision_pretrain=null"])
    result = train_recipe(recipe, out_dir=tmp_path / "run", console=Console(file=open("/dev/null", "w")),
                          progress=False)
    assert _benchmark("first_actions").main([str(result.policy_dir), "--episodes", "3", "--samples", "2",
                                              "--families", "reach", "--splits", "unseen"]) == 0
    out = capsys.readouterr().out
    assert "point grounded" in out and "query error" in out  # the tiny recipe asks its point query too
    (row,) = _table_rows(out)
    assert 0.0 <= float(row[-2]) <= 1.0 and 0.0 <= float(row[-1]) < 1.5  # a rate, and a distance on the table
    asked = row[-3]  # "error (frames)", or "-" when no first frame got an asked object point
    assert asked == "-" or (0.0 <= float(asked.split()[0]) < 1.5 and 1 <= int(asked.split()[1].strip("()")) <= 3)


def test_grounding_probe_trains_every_reader(tmp_path: Path, capsys) -> None:
    _benchmark("grounding_probe").main(["--recipe", "pi05_tabletop_tiny", "--steps", "4", "--check-every", "2",
                                        "--scenes", "16", "--eval-scenes", "8", "--vision", "both",
                                        "--readers", "vlm,expert,flow", "--seeds", "0,1"])
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert [r[:3] for r in rows] == [[vision, reader, seed] for vision in ("scratch", "pre-trained")
                                     for reader in ("vlm", "expert", "flow") for seed in ("0", "1")]
    assert all(0.0 <= float(x) <= 1.0 for r in rows for x in r[3:5])  # grounded on unseen at steps 2 and 4
    assert out.count("held-out") == 2  # one vision pre-training per seed, shared by the readers
