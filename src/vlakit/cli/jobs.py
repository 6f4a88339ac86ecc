"""Top-level jobs: ``vlakit train``, ``vlakit eval``, ``vlakit run``. Heavy imports stay inside the bodies."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from vlakit.cli._common import SetOption, console, handle_errors


class ActorChoice(str, Enum):
    policy = "policy"
    random = "random"
    expert = "expert"


class SubtaskChoice(str, Enum):
    predicted = "predicted"
    oracle = "oracle"


def _default_out(recipe: Any) -> Path:
    return Path("runs") / recipe.name


def train(
    recipe: str = typer.Argument(..., help="Recipe name (see `vlakit recipes list`) or path to a YAML file."),
    overrides: list[str] = SetOption,
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<recipe name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint "
                                "(same optimizer, scheduler, RNG and data position)."),
) -> None:
    """Train a recipe's stages; writes checkpoints, metrics and a self-contained policy folder."""
    from vlakit.recipe.load import load_recipe
    from vlakit.training.run import train_recipe

    r = load_recipe(recipe, overrides or [])
    result = train_recipe(r, out_dir=out or _default_out(r), resume=resume, console=console)
    console.print(f"[green]trained[/] {result.total_steps} steps in {result.wall_s:.0f}s; policy folder: "
                  f"[bold]{result.policy_dir}[/]; loss curve: {result.loss_curve}")


def _evaluate(*, policy_dir: Path | None, recipe: Any, actor: ActorChoice, env: str | None, splits: list[str] | None,
              episodes: int | None, replan_every: int | None, seed: int | None, out: Path, title: str,
              batch_size: int | None = None, subtasks: str | None = None, noise_scale: float | None = None) -> Any:
    from vlakit.errors import VlakitError
    from vlakit.evaluation import ExpertActor, PolicyActor, RandomActor, evaluate
    from vlakit.registry import ENVS

    loaded = None
    if actor is ActorChoice.policy:
        if policy_dir is None:
            raise VlakitError("POLICY_DIR is required unless --actor random or --actor expert")
        from vlakit.policy_io import load_policy

        loaded = load_policy(policy_dir)
        recipe = loaded.recipe
        if noise_scale is not None:  # this evaluation only; the folder's recipe is unchanged
            if recipe.model.inference.actions_from != "flow_matching":
                raise VlakitError(f"--noise-scale applies to flow-matching sampling; policy {recipe.name!r} takes its "
                                  f"actions from {recipe.model.inference.actions_from}")
            spec_ = loaded.policy.spec
            loaded.policy.spec = spec_.model_copy(
                update={"inference": spec_.inference.model_copy(update={"noise_scale": float(noise_scale)})})
    elif noise_scale is not None:
        raise VlakitError(f"--noise-scale applies to the policy's flow sampler, not to --actor {actor.value}")
    spec = recipe.eval if recipe is not None else None
    if env is not None and (spec is None or spec.env.type != env):
        env_spec = ENVS.config_class(env)()
    elif spec is not None:
        env_spec = spec.env
    else:
        env_spec = ENVS.config_class("tabletop")()
    horizon = recipe.model.horizon if recipe is not None else 10
    camera_map = dict(spec.camera_map) if spec else None
    subtasks = subtasks or (spec.subtasks if spec else "predicted")
    if subtasks != "predicted" and actor is not ActorChoice.policy:
        raise VlakitError(f"--subtasks {subtasks} applies to the policy, not to --actor {actor.value}")
    make_actor = {ActorChoice.policy: lambda: PolicyActor(loaded, camera_map=camera_map, subtasks=subtasks),
                  ActorChoice.expert: ExpertActor,
                  ActorChoice.random: lambda: RandomActor(horizon=horizon, seed=0)}[actor]
    return evaluate(make_actor=make_actor, env_spec=env_spec,
                    splits=splits or (spec.splits if spec else ["train", "unseen"]),
                    episodes=episodes or (spec.episodes if spec else 50),
                    replan_every=replan_every or (spec.replan_every if spec else 5),
                    seed=seed if seed is not None else (spec.seed if spec else 0), out_dir=out,
                    strip_episodes=spec.strip_episodes if spec else 3,
                    batch_size=batch_size or (spec.batch_size if spec else 1),
                    console=console, title=title,
                    info={"actor": actor.value, "policy_dir": str(policy_dir) if policy_dir else None,
                          "subtasks": subtasks if actor is ActorChoice.policy else None,
                          "noise_scale": loaded.policy.spec.inference.noise_scale if loaded is not None else None})


def eval_cmd(
    policy_dir: Path = typer.Argument(None, help="Policy folder written by `vlakit train` (runs/<name>/policy)."),
    env: str = typer.Option(None, "--env", help="Environment type (default: the recipe's eval.env, tabletop)."),
    split: list[str] = typer.Option(None, "--split", help="Scene split(s) to evaluate (repeatable; default: "
                                    "the recipe's eval.splits, train and unseen)."),
    episodes: int = typer.Option(None, "--episodes", "-n", min=1, help="Episodes per split."),
    replan_every: int = typer.Option(None, "--replan-every", min=1, help="Actions executed per chunk."),
    seed: int = typer.Option(None, "--seed", help="First episode seed."),
    actor: ActorChoice = typer.Option(ActorChoice.policy, "--actor", help="Evaluate the policy, a uniform random "
                                      "policy or the env's scripted expert (baselines need no POLICY_DIR)."),
    out: Path = typer.Option(None, "--out", "-o", help="Report folder (default: <POLICY_DIR>/../eval)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Episodes rolled out together, one batched "
                                   "policy call per replan (default: the recipe's eval.batch_size). Faster; the "
                                   "reported latency is then that of a batched call."),
    subtasks: SubtaskChoice = typer.Option(None, "--subtasks", help="'oracle': give the policy the env's subtask "
                                           "labels instead of its own predictions (the low-level policy under a "
                                           "perfect high-level one). Default: the recipe's eval.subtasks."),
    noise_scale: float = typer.Option(None, "--noise-scale", min=0.0, help="Scale of the noise each flow-matching "
                                      "chunk is sampled from (1: openpi; 0: a deterministic policy). Default: the "
                                      "policy's recipe (model.inference.noise_scale)."),
) -> None:
    """Closed-loop evaluation: success per task family and split (95% Wilson CI), episode length, latency."""
    out_dir = out or ((policy_dir.parent / "eval") if policy_dir else Path("runs") / f"eval_{actor.value}")
    report = _evaluate(policy_dir=policy_dir, recipe=None, actor=actor, env=env, splits=split, episodes=episodes,
                       replan_every=replan_every, seed=seed, out=out_dir, title=f"{actor.value} evaluation",
                       batch_size=batch_size, subtasks=subtasks.value if subtasks else None,
                       noise_scale=noise_scale)
    console.print(f"report: [bold]{report.files['json']}[/]; episode strip: {report.files['png']}")


def run(
    recipe: str = typer.Argument(..., help="Recipe name or path (default recipe: pi05_tabletop)."),
    overrides: list[str] = SetOption,
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<recipe name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    episodes: int = typer.Option(None, "--episodes", "-n", min=1, help="Evaluation episodes per split."),
    baselines: bool = typer.Option(False, "--baselines", help="Also evaluate a random policy and the scripted "
                                   "expert on the same episodes."),
) -> None:
    """The main job: generate data if missing, train all stages, evaluate on the recipe's splits."""
    import time

    from vlakit.recipe.load import load_recipe
    from vlakit.training.run import train_recipe

    start = time.perf_counter()
    r = load_recipe(recipe, overrides or [])
    out_dir = out or _default_out(r)
    result = train_recipe(r, out_dir=out_dir, resume=resume, console=console)
    report = _evaluate(policy_dir=result.policy_dir, recipe=r, actor=ActorChoice.policy, env=None, splits=None,
                       episodes=episodes, replan_every=None, seed=None, out=out_dir / "eval",
                       title=f"{r.name}: closed-loop success")
    if baselines:
        for choice in (ActorChoice.random, ActorChoice.expert):
            _evaluate(policy_dir=None, recipe=r, actor=choice, env=None, splits=None, episodes=episodes,
                      replan_every=None, seed=None, out=out_dir / f"eval_{choice.value}",
                      title=f"baseline: {choice.value}")
    console.print(f"[green]done[/] in {time.perf_counter() - start:.0f}s (training {result.wall_s:.0f}s: "
                  f"{result.describe_phases()}; evaluation {report.wall_s:.0f}s)")
    console.print(f"policy folder: [bold]{result.policy_dir}[/]")
    console.print(f"eval report:   [bold]{report.files['json']}[/] (episode strip {report.files['png']})")
    console.print(f"loss curve:    {result.loss_curve}; metrics {result.metrics_csv}")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``eval`` and ``run`` to the top-level ``vlakit`` app."""
    app.command("train")(handle_errors(train))
    app.command("eval")(handle_errors(eval_cmd))
    app.command("run")(handle_errors(run))
