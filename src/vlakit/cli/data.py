"""``vlakit data generate|inspect`` -- generated tabletop datasets and any LeRobot v3 folder.

Light module: numpy/pyarrow/torch are imported inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vlakit.cli._common import console, handle_errors

app = typer.Typer(no_args_is_help=True)

_WORLDS = ("tabletop",)


@app.command("generate")
@handle_errors
def generate(
    world: str = typer.Argument(..., help="World to generate demonstrations in (only 'tabletop')."),
    episodes: int = typer.Option(..., "--episodes", "-n", min=1, help="Number of episodes."),
    out: Path = typer.Option(..., "--out", "-o", help="Output dataset folder (LeRobot v3 layout)."),
    embodiment: str = typer.Option("gripper", help="gripper (velocity control) or arm (joint control)."),
    split: str = typer.Option("train", help="train or unseen (held-out styles and colour-shape pairs)."),
    families: str = typer.Option("reach,push,pick_place", help="Comma-separated task families: "
                                 "reach, push, pick_place, tidy."),
    seed: int = typer.Option(0, help="Dataset seed (episode i uses env seed 1e6*(seed+1)+i)."),
    noise: float = typer.Option(0.1, min=0.0, help="Std of Gaussian noise on executed expert actions."),
    grip_flips: float = typer.Option(0.0, "--grip-flips", min=0.0, max=0.5,
                                     help="Rate per step at which the executed grip command is inverted (the expert's "
                                          "labels then show the recovery)."),
    early_closes: float = typer.Option(0.0, "--early-closes", min=0.0, max=1.0,
                                       help="Share of episodes whose executed jaws close once, 1-4 steps before the "
                                            "expert closes them (the labels then show the recovery)."),
    image_size: int = typer.Option(64, min=16, help="Square image size of both cameras."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing different dataset at --out."),
    workers: int = typer.Option(None, "--workers", min=1, help="Worker processes (default: one per usable CPU "
                                "core, at most 8; the dataset is the same for any number)."),
) -> None:
    """Write scripted-expert demonstrations as a LeRobot v3 dataset (resumable, atomic)."""
    from vlakit.data.errors import DatasetError
    from vlakit.data.generate import generate_tabletop_dataset
    from vlakit.envs.tabletop import FAMILIES
    from vlakit.envs.tabletop.embodiments import EMBODIMENTS
    from vlakit.envs.tabletop.scene import SPLITS
    from vlakit.errors import did_you_mean

    if world not in _WORLDS:
        raise DatasetError(f"unknown world {world!r}; valid: {', '.join(_WORLDS)}." + did_you_mean(world, _WORLDS))
    fams = tuple(f.strip() for f in families.split(",") if f.strip())
    for name, value, valid in [("--embodiment", embodiment, EMBODIMENTS), ("--split", split, SPLITS)] + [
            ("--families", f, FAMILIES) for f in fams]:
        if value not in valid:
            raise DatasetError(f"{name}: unknown value {value!r}; valid: {', '.join(valid)}."
                               + did_you_mean(value, valid))
    if not fams:
        raise DatasetError("--families is empty")
    path = generate_tabletop_dataset(out, episodes=episodes, split=split, embodiment=embodiment, families=fams,
                                     seed=seed, noise=noise, image_size=image_size, progress=True,
                                     overwrite=overwrite, workers=workers, grip_flips=grip_flips,
                                     early_closes=early_closes)
    console.print(f"[green]dataset ready:[/] {path}")


@app.command("inspect")
@handle_errors
def inspect(
    path: Path = typer.Argument(..., help="A LeRobot v3 dataset folder."),
    contact_sheet: Path = typer.Option(None, "--contact-sheet", help="Write a PNG grid of frames here."),
    episodes: int = typer.Option(4, help="Episodes shown in the contact sheet (one row each)."),
    frames: int = typer.Option(6, help="Frames per episode in the contact sheet."),
) -> None:
    """Summarise a dataset: episodes, frames, features, tasks, stats; optionally a contact sheet."""
    import numpy as np
    from rich.table import Table

    from vlakit.data.lerobot_reader import LeRobotDataset

    ds = LeRobotDataset(path)
    console.print(f"[bold]{ds.root}[/]  codebase {ds.info.get('codebase_version')}  robot_type "
                  f"{ds.robot_type}  fps {ds.fps}")
    lengths = [int(e["length"]) for e in ds.episodes]
    console.print(f"episodes {ds.num_episodes}  frames {len(ds)}  tasks {len(ds.tasks)}  episode length "
                  f"min/mean/max {min(lengths)}/{np.mean(lengths):.1f}/{max(lengths)}")
    table = Table(title="features")
    for col in ("key", "dtype", "shape", "names"):
        table.add_column(col)
    for key, ft in ds.features.items():
        names = ft.get("names")
        table.add_row(key, str(ft["dtype"]), str(list(ft["shape"])),
                      ", ".join(map(str, names)) if isinstance(names, list) else str(names))
    console.print(table)
    tasks = Table(title=f"tasks (first 10 of {len(ds.tasks)})")
    tasks.add_column("index")
    tasks.add_column("task")
    for i, t in sorted(ds.tasks.items())[:10]:
        tasks.add_row(str(i), t)
    console.print(tasks)
    stats = Table(title="stats (meta/stats.json)" if ds.stats else "stats (computed: no meta/stats.json)")
    for col in ("feature", "dim", "mean", "std", "q01", "q99"):
        stats.add_column(col)
    for key in ("observation.state", "action"):
        if not ds.has(key):
            continue
        x = ds.array(key)
        s = (ds.stats or {}).get(key) or {"mean": x.mean(0), "std": x.std(0), "q01": np.quantile(x, 0.01, 0),
                                          "q99": np.quantile(x, 0.99, 0)}
        for d in range(x.shape[1]):
            stats.add_row(key if d == 0 else "", str(d), *(f"{float(np.ravel(s[k])[d]):+.3f}"
                                                           for k in ("mean", "std", "q01", "q99")))
    console.print(stats)
    if contact_sheet is not None:
        _contact_sheet(ds, contact_sheet, episodes=episodes, frames=frames)
        console.print(f"contact sheet written to {contact_sheet}")


def _contact_sheet(ds, out: Path, *, episodes: int, frames: int) -> None:
    """Rows = episodes, columns = evenly spaced frames, each cell = all cameras side by side."""
    import numpy as np
    from PIL import Image

    from vlakit.data.transforms import resize_with_pad
    from vlakit.io import atomic_write_bytes

    size = 96
    rows = []
    for e in range(min(episodes, ds.num_episodes)):
        meta = ds.episodes[e]
        start = int(meta.get("dataset_from_index", 0)) if "dataset_from_index" in meta else None
        first = int(np.flatnonzero(ds.array("episode_index")[:, 0] == meta["episode_index"])[0]) \
            if start is None else start
        n = int(meta["length"])
        picks = np.linspace(first, first + n - 1, frames).round().astype(int)
        cells = [np.concatenate([resize_with_pad(ds.image(k, int(r)), size) for k in ds.camera_keys], axis=1)
                 for r in picks]
        rows.append(np.concatenate(cells, axis=1))
    if not rows:
        return
    import io

    buf = io.BytesIO()
    Image.fromarray(np.concatenate(rows, axis=0)).save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
