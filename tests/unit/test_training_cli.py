"""The train / eval / run commands: registration, bad input (exit 2, one paragraph), baselines."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vlakit.cli.main import app

runner = CliRunner()


def flat(result) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_jobs_are_top_level_commands():
    out = runner.invoke(app, ["--help"]).output
    for name in ("train", "eval", "run"):
        assert f" {name} " in out


def test_train_recipe_without_train_section_is_bad_input(tmp_path):
    result = runner.invoke(app, ["train", "pi05", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "no `train:` and `data:` sections" in flat(result) and "Traceback" not in flat(result)


def test_train_bad_override_names_field(tmp_path):
    result = runner.invoke(app, ["train", "pi05_tabletop_tiny", "--set", "train.stages.0.stepz=3",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2 and "stepz" in flat(result)


def test_eval_missing_policy_folder(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in flat(result)


def test_eval_policy_actor_needs_folder():
    result = runner.invoke(app, ["eval"])
    assert result.exit_code == 2 and "POLICY_DIR is required" in flat(result)


def test_eval_unknown_env_names_closest(tmp_path):
    result = runner.invoke(app, ["eval", "--actor", "random", "--env", "tabeltop", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "tabletop" in flat(result)


def test_eval_expert_baseline_writes_report(tmp_path):
    result = runner.invoke(app, ["eval", "--actor", "expert", "--episodes", "3", "--split", "unseen",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval_report.json").read_text())
    assert report["actor"] == "expert" and report["splits"] == ["unseen"]
    overall = [g for g in report["summary"] if g["family"] == "all"][0]
    assert overall["episodes"] == 3 and overall["success_rate"] == 1.0


def test_eval_oracle_subtasks_are_for_the_policy_only(tmp_path):
    result = runner.invoke(app, ["eval", "--actor", "expert", "--subtasks", "oracle", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--subtasks oracle applies to the policy" in flat(result)
    assert not (tmp_path / "eval_report.json").exists()


def test_eval_noise_scale_is_for_the_policy_only_and_not_negative(tmp_path):
    result = runner.invoke(app, ["eval", "--actor", "expert", "--noise-scale", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--noise-scale applies to the policy" in flat(result)
    result = runner.invoke(app, ["eval", "--actor", "expert", "--noise-scale", "-1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "noise-scale" in flat(result)
    assert not (tmp_path / "eval_report.json").exists()


def test_resume_accepts_a_recipe_saved_before_new_fields_with_defaults(tmp_path):
    """A run begun by an older vlakit saved its resolved recipe without fields added since (with
    their defaults); resuming it with the same recipe works, and a real change is still refused."""
    from vlakit.errors import VlakitError
    from vlakit.recipe.load import load_recipe, recipe_to_yaml
    from vlakit.training.run import _check_recipe_file

    recipe = load_recipe("pi05_tabletop_tiny")
    text = recipe_to_yaml(recipe)
    assert "    implementation: auto\n" in text
    (tmp_path / "recipe.yaml").write_text(text.replace("    implementation: auto\n", ""))  # as saved before
    _check_recipe_file(tmp_path, recipe, resume=True, write=True)
    assert (tmp_path / "recipe.yaml").read_text() == text  # rewritten in today's form
    changed = load_recipe("pi05_tabletop_tiny", ["train.optimizer.lr=0.5"])
    (tmp_path / "recipe.yaml").write_text(text.replace("    implementation: auto\n", ""))
    with pytest.raises(VlakitError, match="recipe differs"):
        _check_recipe_file(tmp_path, changed, resume=True, write=True)
