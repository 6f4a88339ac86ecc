"""Evaluation outputs: a rich table, a JSON report, and a PNG/GIF strip of episodes with subtasks drawn."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from vlakit.evaluation.metrics import EpisodeResult, GroupStats
from vlakit.evaluation.rollout import Recording
from vlakit.io import atomic_write_bytes, atomic_write_text


def results_table(stats: list[GroupStats], *, title: str) -> Any:
    """A rich Table: split, family, success (95 % Wilson CI), episodes, mean length, latency."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in [("split", "left"), ("family", "left"), ("success", "right"), ("95% CI", "right"),
                         ("episodes", "right"), ("mean len", "right"), ("latency ms (p95)", "right"),
                         ("invalid", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for g in stats:
        style = "bold" if g.family == "all" else None
        table.add_row(g.split, g.family, f"{100 * g.success_rate:.1f}%",
                      f"{100 * g.ci_low:.0f}-{100 * g.ci_high:.0f}%", f"{g.successes}/{g.episodes}",
                      f"{g.mean_length:.1f}", f"{g.mean_latency_ms:.1f} ({g.p95_latency_ms:.1f})", str(g.failures),
                      style=style)
    return table


def write_json_report(path: Path, *, stats: list[GroupStats], episodes: list[EpisodeResult],
                      info: dict[str, Any]) -> None:
    report = {**info, "summary": [asdict(g) for g in stats], "episodes": [e.to_json() for e in episodes]}
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def _annotate(image: np.ndarray, lines: list[str], *, scale: int, colour: tuple[int, int, int]) -> Any:
    from PIL import Image, ImageDraw

    img = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    text_h = 11 * len(lines) + 4
    canvas = Image.new("RGB", (img.width, img.height + text_h), (255, 255, 255))
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((2, img.height + 2 + 11 * i), line[: max(8, img.width // 6)], fill=colour)
    return canvas


def write_strip(recordings: list[Recording], png_path: Path, gif_path: Path | None = None, *,
                frames_per_episode: int = 6, scale: int = 3) -> None:
    """One row per episode: evenly spaced frames, each captioned with the step and predicted subtask.

    The GIF plays every recorded frame of the episodes side by side (shorter ones hold their last frame).
    """
    from PIL import Image, ImageDraw

    if not recordings:
        return
    rows = []
    for rec in recordings:
        idx = np.linspace(0, len(rec.frames) - 1, num=min(frames_per_episode, len(rec.frames))).round().astype(int)
        colour = (0, 120, 0) if rec.success else (170, 0, 0)
        tiles = [_annotate(rec.frames[i].image, [f"t={rec.frames[i].step}", rec.frames[i].subtask or ""],
                           scale=scale, colour=colour) for i in idx]
        header_h = 14
        width = sum(t.width for t in tiles)
        row = Image.new("RGB", (width, tiles[0].height + header_h), (255, 255, 255))
        verdict = "SUCCESS" if rec.success else "FAIL"
        ImageDraw.Draw(row).text((2, 1), f"[{rec.split}] {verdict}: {rec.prompt}", fill=colour)
        x = 0
        for t in tiles:
            row.paste(t, (x, header_h))
            x += t.width
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), (255, 255, 255))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic_write_bytes(png_path, buffer.getvalue())
    if gif_path is not None:
        length = max(len(r.frames) for r in recordings)
        frames = []
        for t in range(length):
            tiles = []
            for rec in recordings:
                f = rec.frames[min(t, len(rec.frames) - 1)]
                tiles.append(_annotate(f.image, [f"t={f.step}", f.subtask or ""], scale=scale,
                                       colour=(0, 120, 0) if rec.success else (170, 0, 0)))
            frame = Image.new("RGB", (sum(x.width for x in tiles), tiles[0].height), (255, 255, 255))
            x = 0
            for tile in tiles:
                frame.paste(tile, (x, 0))
                x += tile.width
            frames.append(frame)
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=120, loop=0)
        atomic_write_bytes(gif_path, buffer.getvalue())
