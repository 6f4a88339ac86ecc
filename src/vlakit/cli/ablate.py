"""``vlakit ablate STUDY`` -- train and evaluate recipe variants, then compare them in one table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from vlakit.cli._common import SetOption, console, handle_errors


def ablate(
    study: str = typer.Argument(..., help="Study name (recipes/ablations/) or path to a study YAML."),
    overrides: list[str] = SetOption,
    out: Path = typer.Option(None, "--out", "-o", help="Study folder (default: runs/ablations/<study>)."),
    only: list[str] = typer.Option(None, "--only", help="Run only these variants (repeatable)."),
    episodes: int = typer.Option(None, "--episodes", "-n", min=1, help="Evaluation episodes per split."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate every variant and show the diffs; train nothing."),
    resume: bool = typer.Option(False, "--resume", help="Continue interrupted variants; finished ones are reused."),
) -> None:
    """Run an ablation study: every variant is the base recipe plus a recipe diff.

    All variants are validated before anything trains. Each variant trains into its own folder and
    is evaluated closed-loop on the same episodes; the comparison table (success per split, wall
    time, parameter count) is printed and written as JSON and Markdown.
    """
    from rich.table import Table

    from vlakit.errors import VlakitError
    from vlakit.recipe.ablation import flatten_diff, load_study

    st = load_study(study, extra_overrides=overrides or [])
    names = list(st.recipes)
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise VlakitError(f"--only names unknown variant(s) {unknown}; the study has {names}")
        names = [n for n in names if n in only]
    diff_table = Table(title=f"study {st.spec.name}: {len(names)} variant(s) of {st.base_path.name}")
    diff_table.add_column("variant")
    diff_table.add_column("recipe diff")
    for name in names:
        diff_table.add_row(name, "\n".join(flatten_diff(st.diffs[name])) or "(base)")
    console.print(diff_table)
    if dry_run:
        console.print("[green]all variants are valid[/] (dry run: nothing trained)")
        return

    out_dir = out or Path("runs") / "ablations" / st.spec.name
    rows = []
    for name in names:
        console.rule(f"variant {name}")
        rows.append(_run_variant(st.recipes[name], out_dir / name, episodes=episodes, resume=resume,
                                 diff=flatten_diff(st.diffs[name])))
        rows[-1]["variant"] = name
        _write_summary(out_dir, st.spec.name, rows)
    table = _comparison_table(rows, title=f"ablation {st.spec.name}")
    console.print(table)
    console.print(f"summary: [bold]{out_dir / 'ablation.json'}[/] and {out_dir / 'ablation.md'}")


def _run_variant(recipe: Any, out_dir: Path, *, episodes: int | None, resume: bool, diff: list[str]) -> dict[str, Any]:
    from vlakit.evaluation import PolicyActor, evaluate
    from vlakit.policy_io import load_policy
    from vlakit.training.run import train_recipe

    result = train_recipe(recipe, out_dir=out_dir, resume=resume, console=console)
    loaded = load_policy(result.policy_dir)
    spec = recipe.eval
    report = evaluate(make_actor=lambda: PolicyActor(loaded, camera_map=dict(spec.camera_map) or None,
                                                     subtasks=spec.subtasks),
                      env_spec=spec.env, splits=list(spec.splits), episodes=episodes or spec.episodes,
                      replan_every=spec.replan_every, seed=spec.seed, out_dir=out_dir / "eval", console=console,
                      title=f"{recipe.name}: closed-loop success")
    rates = {g.split: {"success": g.success_rate, "ci": [g.ci_low, g.ci_high], "episodes": g.episodes}
             for g in report.stats if g.family == "all"}
    return {"recipe": recipe.name, "diff": diff, "parameters": sum(p.numel() for p in loaded.policy.parameters()),
            "train_s": result.wall_s, "eval_s": report.wall_s, "splits": rates,
            "policy_dir": str(result.policy_dir), "report": str(report.files.get("json"))}


def _comparison_table(rows: list[dict[str, Any]], *, title: str) -> Any:
    from rich.table import Table

    splits = sorted({s for r in rows for s in r["splits"]})
    table = Table(title=title)
    for col in ["variant", "diff", *[f"{s} success" for s in splits], "params", "train s"]:
        table.add_column(col, justify="right" if col not in ("variant", "diff") else "left")
    for r in rows:
        cells = [r["variant"], "\n".join(r["diff"]) or "(base)"]
        for s in splits:
            v = r["splits"].get(s)
            cells.append(f"{v['success']:.0%} [{v['ci'][0]:.0%}, {v['ci'][1]:.0%}]" if v else "-")
        cells += [f"{r['parameters']:,}", f"{r['train_s']:.0f}"]
        table.add_row(*cells)
    return table


def _write_summary(out_dir: Path, name: str, rows: list[dict[str, Any]]) -> None:
    from vlakit.io import atomic_write_text

    atomic_write_text(out_dir / "ablation.json", json.dumps({"study": name, "variants": rows}, indent=2) + "\n")
    splits = sorted({s for r in rows for s in r["splits"]})
    lines = [f"# ablation {name}", "", "| variant | diff | " + " | ".join(f"{s} success" for s in splits)
             + " | params | train s |", "|---|---|" + "---|" * len(splits) + "---|---|"]
    for r in rows:
        cells = [f"{r['splits'][s]['success']:.0%}" if s in r["splits"] else "-" for s in splits]
        lines.append(f"| {r['variant']} | {'<br>'.join(r['diff']) or '(base)'} | " + " | ".join(cells)
                     + f" | {r['parameters']:,} | {r['train_s']:.0f} |")
    atomic_write_text(out_dir / "ablation.md", "\n".join(lines) + "\n")


def register(app: typer.Typer) -> None:
    app.command("ablate")(handle_errors(ablate))
