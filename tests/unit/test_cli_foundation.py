"""The CLI stays light and explains itself."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from vlakit.cli.main import app

runner = CliRunner()


def test_help_does_not_import_torch() -> None:
    code = ("import sys; from typer.testing import CliRunner; from vlakit.cli.main import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "print('torch' in sys.modules, 'lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in ("version", "components", "plugins", "recipes"):
        assert command in result.output


def test_version() -> None:
    import vlakit

    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and vlakit.__version__ in result.output


def test_components_list_unknown_kind_exits_2() -> None:
    result = runner.invoke(app, ["components", "list", "vision_encoder"])
    assert result.exit_code == 2
    assert "vision_encoders" in result.output


def test_components_list_shows_plugin_component() -> None:
    result = runner.invoke(app, ["components", "list", "action_tokenizers"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "example_mulaw" in result.output
