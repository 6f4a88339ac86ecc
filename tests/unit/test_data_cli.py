"""`vlakit data generate` and `vlakit data inspect` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from vlakit.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_generate_then_inspect_with_contact_sheet(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(app, ["data", "generate", "tabletop", "--episodes", "3", "--out", str(out),
                                 "--families", "reach"], env=WIDE)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 3
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["data", "inspect", str(out), "--contact-sheet", str(sheet), "--episodes", "2",
                                 "--frames", "3"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert str(info["total_frames"]) in result.output and "observation.state" in result.output
    with Image.open(sheet) as img:
        assert img.width > img.height > 0  # 3 frames per row, 2 rows


def test_inspect_of_a_folder_that_is_not_a_dataset_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "inspect", str(tmp_path)], env=WIDE)
    assert result.exit_code == 2 and "info.json" in result.output
