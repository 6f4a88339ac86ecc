"""`vlakit recipes validate|show|schema` on good and bad recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.recipes.conftest import BASE_RECIPE
from vlakit.cli.main import app

pytestmark = pytest.mark.usefixtures("fake_components")
runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_validate_reports_every_failure_and_exits_2(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE_RECIPE)
    bad1 = tmp_path / "bad1.yaml"
    bad1.write_text(BASE_RECIPE.replace("horizon: 8", "horizon: x"))
    bad2 = tmp_path / "bad2.yaml"
    bad2.write_text(BASE_RECIPE.replace("fake_head", "fake_hed"))
    result = runner.invoke(app, ["recipes", "validate", str(good), str(bad1), str(bad2)], env=WIDE)
    assert result.exit_code == 2
    assert "ok" in result.output and "bad1.yaml" in result.output and "bad2.yaml" in result.output
    assert "model.horizon" in result.output and "Did you mean 'fake_head'" in result.output
    assert "2 of 3 recipe(s) invalid" in result.output
    assert "Traceback" not in result.output


def test_validate_good_recipe_exits_0(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE_RECIPE)
    assert runner.invoke(app, ["recipes", "validate", str(good)]).exit_code == 0


def test_show_prints_resolved_yaml_with_overrides(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE_RECIPE)
    result = runner.invoke(app, ["recipes", "show", str(good), "--set", "model.horizon=12"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "horizon: 12" in result.output
    assert "max_token_len: 200" in result.output  # defaults are filled in


def test_show_bad_override_is_one_paragraph_exit_2(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE_RECIPE)
    result = runner.invoke(app, ["recipes", "show", str(good), "--set", "model.horizon_x=3"], env=WIDE)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "horizon_x" in result.output


def test_verbose_shows_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    quiet = runner.invoke(app, ["recipes", "show", str(bad)], env=WIDE)
    loud = runner.invoke(app, ["--verbose", "recipes", "show", str(bad)], env=WIDE)
    from vlakit.cli import _common

    _common.state.verbose = False
    assert quiet.exit_code == loud.exit_code == 2
    assert "Traceback" not in quiet.output and "Traceback" in loud.output


def test_schema_includes_component_configs() -> None:
    result = runner.invoke(app, ["recipes", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    text = json.dumps(schema)
    assert "fake_vision" in text and "fake_head" in text  # registered Configs appear in the schema
    assert schema["additionalProperties"] is False
