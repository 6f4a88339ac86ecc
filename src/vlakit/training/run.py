"""``vlakit train``: a recipe in, a trained self-contained policy folder out.

Steps: pick the backend -> generate/cache the data -> compute (or load) norm stats -> fit (or load)
the action tokenizer -> build the policy -> run the stages -> save the policy folder (EMA weights
when EMA is on), ``metrics.csv`` and ``loss_curve.png``.

Run folder::

    recipe.yaml  assets/norm_stats.json  assets/action_tokenizer/  checkpoints/  metrics.jsonl
    metrics.csv  loss_curve.png  policy/  train_summary.json
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlakit.errors import VlakitError
from vlakit.io import atomic_write_text


@dataclass
class TrainResult:
    out_dir: Path
    policy_dir: Path
    metrics_csv: Path
    loss_curve: Path
    wall_s: float
    total_steps: int
    final_losses: dict[str, float]
    #: wall seconds of each part of the run, in order: ``data``, ``norm stats + tokenizer``, ``vision
    #: pretrain`` (when the recipe has it), each stage by name (its set-up included), ``saving``
    phases_s: dict[str, float] = field(default_factory=dict)

    def describe_phases(self) -> str:
        """``"data 58s, ..., saving 1s"``."""
        return ", ".join(f"{name} {seconds:.0f}s" for name, seconds in self.phases_s.items())


def process_rank() -> int:
    """Global rank of this process (Lightning's DDP launcher re-runs the command with these set)."""
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def quiet_lightning() -> None:
    """Lightning's info lines (GPU available, tips) drown the progress output."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__.*")


def _same_recipe_with_new_defaults(path: Path, text: str) -> bool:
    """Whether the run's saved recipe, read with today's schema, is ``text``: it then differs only by
    fields a newer vlakit added with their defaults (a run begun before them can be resumed)."""
    from vlakit.recipe.load import load_recipe, recipe_to_yaml

    try:
        return recipe_to_yaml(load_recipe(path)) == text
    except (VlakitError, OSError, ValueError):  # an unreadable old recipe is simply "different"
        return False


def _check_recipe_file(out_dir: Path, recipe: Any, *, resume: bool, write: bool) -> None:
    from vlakit.recipe.load import recipe_to_yaml

    text = recipe_to_yaml(recipe)
    path = out_dir / "recipe.yaml"
    if resume and path.is_file():
        old = path.read_text(encoding="utf-8")
        if old != text and not _same_recipe_with_new_defaults(path, text):
            diff = next((f"{a.strip()!r} -> {b.strip()!r}" for a, b in zip(old.splitlines(), text.splitlines())
                         if a != b), "lengths differ")
            raise VlakitError(f"cannot resume {out_dir}: the recipe differs from the one the run began with "
                              f"({path}; first difference {diff}). Resume with the same recipe and --set values.")
    if write:
        atomic_write_text(path, text)


def prepare_inputs(recipe: Any, *, out_dir: Path, console: Any, progress: bool = True,
                   write: bool = True, phases: dict[str, float] | None = None) -> tuple[Any, Any]:
    """Generate/cache data, then fit-or-load norm stats and the action tokenizer (saved under ``assets/``).

    Returns ``(norm_stats, action_tokenizer_or_None)``. ``phases`` receives the seconds of ``data``.
    """
    from vlakit.data import NormStats, compute_norm_stats, iter_action_chunks, prepare_sources

    assets = out_dir / "assets"
    console.print(f"[bold]data[/]: preparing {', '.join(recipe.data.sources)} (cache {recipe.data.cache_dir})")
    t0 = time.perf_counter()
    prepare_sources(recipe.data, cache_dir=None, progress=progress)
    seconds = time.perf_counter() - t0
    if phases is not None:
        phases["data"] = seconds
    console.print(f"[bold]data[/]: ready in {seconds:.1f}s")
    stats_path = assets / "norm_stats.json"
    if stats_path.is_file():
        norm_stats = NormStats.load(stats_path)
        console.print(f"[bold]norm stats[/]: loaded {stats_path}")
    else:
        t0 = time.perf_counter()
        norm_stats = compute_norm_stats(recipe.data, model_spec=recipe.model)
        if write:
            norm_stats.save(stats_path)
        console.print(f"[bold]norm stats[/]: computed in {time.perf_counter() - t0:.1f}s -> {stats_path}")
    spec = recipe.model.action_tokenizer
    if spec is None:
        return norm_stats, None
    from vlakit.registry import ACTION_TOKENIZERS

    tok_dir = assets / "action_tokenizer"
    cls = ACTION_TOKENIZERS.get(spec.type)
    if (tok_dir / "DONE").is_file():
        tokenizer = cls.load(tok_dir)
        console.print(f"[bold]action tokenizer[/]: loaded {spec.type} from {tok_dir}")
        return norm_stats, tokenizer
    tokenizer = spec.build()
    if not tokenizer.is_fitted:
        t0 = time.perf_counter()
        chunks = np.asarray(iter_action_chunks(recipe.data, model_spec=recipe.model, norm_stats=norm_stats,
                                               max_chunks=getattr(spec, "fit_chunks", None) or 4000))
        console.print(f"[bold]action tokenizer[/]: fitting {spec.type} on {len(chunks)} chunks {chunks.shape[1:]}")
        tokenizer.fit(chunks)
        console.print(f"[bold]action tokenizer[/]: fitted in {time.perf_counter() - t0:.1f}s")
    if write:
        from vlakit.io import atomic_dir

        with atomic_dir(tok_dir) as tmp:
            tokenizer.save(tmp)
            (tmp / "DONE").write_text("ok\n")
    return norm_stats, tokenizer


def _vision_pretrain(policy: Any, recipe: Any, *, out_dir: Path, backend: Any, console: Any, progress: bool,
                     write: bool, resuming: bool) -> dict[str, Any] | None:
    """Run ``train.vision_pretrain`` on ``policy.vision`` and return the report.

    A run that crashed after pre-training left its result in ``assets/``: it is loaded instead when
    it was made from the same settings, model and starting weights. When ``resuming`` (checkpoints
    exist, they hold the weights) only the saved report is returned, for the summary.
    """
    from safetensors.torch import load_file, save

    from vlakit.io import atomic_write_bytes
    from vlakit.training.vision_pretrain import pretrain_vision

    spec = recipe.train.vision_pretrain
    weights = out_dir / "assets" / "vision_pretrain.safetensors"
    report_path = weights.with_suffix(".json")
    saved = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
    if resuming:
        return saved
    # everything the pre-trained weights depend on: task settings, model shapes, starting weights
    init = recipe.train.init
    wanted = {"spec": spec.model_dump(mode="json"), "model": recipe.model.model_dump(mode="json"),
              "seed": recipe.train.seed, "init": init.model_dump(mode="json") if init is not None else None}
    if saved is not None and weights.is_file():
        if {k: saved.get(k) for k in wanted} == wanted:
            policy.vision.load_state_dict(load_file(str(weights)))
            console.print(f"[bold]vision pretrain[/]: loaded {weights}")
            return saved
        console.print(f"[bold]vision pretrain[/]: {weights} was made with other settings; pre-training again")
    device = backend.device
    policy.vision.to(device)
    # a forked RNG: the stages see the same random stream whether pre-training ran or was loaded
    with torch.random.fork_rng(devices=[]):
        report = {**wanted, **pretrain_vision(policy.vision, spec, device=device, autocast=backend.autocast(),
                                              console=console, progress=progress)}
    policy.vision.to("cpu")
    held = report.get("held_out", {})
    console.print(f"[bold]vision pretrain[/]: {spec.steps} steps in {report['wall_s']:.0f}s; held-out "
                  + ", ".join(f"{k} {v:.3f}" for k, v in held.items()))
    if write:
        weights.parent.mkdir(parents=True, exist_ok=True)
        report_path.unlink(missing_ok=True)  # never a new weights file beside an old report
        atomic_write_bytes(weights, save({k: v.detach().contiguous() for k, v in policy.vision.state_dict().items()}))
        atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    return report


def train_recipe(recipe: Any, *, out_dir: str | Path, resume: bool = False, console: Any = None,
                 progress: bool = True, extra_callbacks: list[Any] | None = None) -> TrainResult:
    """Train every stage of ``recipe`` into ``out_dir`` and save the policy folder ``out_dir/policy``.

    Raises:
        VlakitError: the recipe lacks ``data``/``train``; the run folder holds another run (without
            ``resume``) or a different recipe (with it); a loss became non-finite (step, sources and
            last good checkpoint named).
    """
    from rich.console import Console

    from vlakit.backends import select_backend
    from vlakit.data import build_train_loader
    from vlakit.recipe.build import build_policy
    from vlakit.training.data import DataFeed
    from vlakit.training.report import plot_loss_curve, read_metrics, write_metrics_csv
    from vlakit.training.stages import has_checkpoints, run_stages

    console = console or Console()
    if recipe.train is None or recipe.data is None:
        raise VlakitError(f"recipe {recipe.name!r} has no `train:` and `data:` sections; it cannot be trained")
    out_dir = Path(out_dir)
    quiet_lightning()
    start = time.perf_counter()
    rank0 = process_rank() == 0
    if has_checkpoints(out_dir) and not resume:
        raise VlakitError(f"{out_dir} already holds checkpoints of a previous run; pass --resume to continue it, "
                          f"or choose another --out")
    _check_recipe_file(out_dir, recipe, resume=resume, write=rank0)
    backend = select_backend(recipe.backend, precision=recipe.train.precision)
    console.print(f"[bold]backend[/]: {backend.describe()}")
    seed_everything(recipe.train.seed)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    norm_stats, action_tok = prepare_inputs(recipe, out_dir=out_dir, console=console, progress=progress and rank0,
                                            write=rank0, phases=phases)
    phases["norm stats + tokenizer"] = time.perf_counter() - t0 - phases["data"]
    seed_everything(recipe.train.seed)
    policy = build_policy(recipe, device="cpu", action_tokenizer=action_tok)
    init = recipe.train.init
    if init is not None and not resume:
        from vlakit.policy_io import init_weights

        names = init_weights(policy, path=init.path, include=init.include, exclude=init.exclude)
        console.print(f"[bold]init[/]: {len(names)} tensors from {init.path}")
    vision_report = None
    if recipe.train.vision_pretrain is not None:
        t0 = time.perf_counter()
        vision_report = _vision_pretrain(policy, recipe, out_dir=out_dir, backend=backend, console=console,
                                         progress=progress and rank0, write=rank0, resuming=has_checkpoints(out_dir))
        phases["vision pretrain"] = time.perf_counter() - t0
    n_params = sum(p.numel() for p in policy.parameters())
    console.print(f"[bold]policy[/]: {n_params / 1e6:.2f}M parameters; stages: "
                  + ", ".join(f"{s.name} ({s.steps} steps)" for s in recipe.train.stages))

    def make_feed(data_spec: Any) -> DataFeed:
        def make_loader(*, rank: int, world_size: int) -> Any:
            return build_train_loader(data_spec, model_spec=recipe.model, norm_stats=norm_stats,
                                      seed=recipe.train.seed, rank=rank, world_size=world_size)

        return DataFeed(make_loader)

    feed = make_feed(recipe.data)
    stage_data = None
    if any(stage.dagger is not None or stage.mixture is not None for stage in recipe.train.stages):
        from vlakit.training.stage_data import StageData

        stage_data = StageData(recipe=recipe, out_dir=out_dir, norm_stats=norm_stats, backend=backend,
                               make_feed=make_feed, base_feed=feed, console=console, progress=progress and rank0)
    result = run_stages(policy=policy, train=recipe.train, feed=feed, out_dir=out_dir, backend=backend,
                        resume=resume, console=console, progress=progress, extra_callbacks=extra_callbacks,
                        stage_data=stage_data)
    for name, seconds in result.stage_wall_s.items():  # a stage called like a phase keeps both
        phases[f"stage {name}" if name in phases or name == "saving" else name] = seconds
    t_save = time.perf_counter()
    policy.to("cpu")
    records = read_metrics(result.metrics_path)
    final = {k: v for k, v in (records[-1] if records else {}).items()
             if k not in ("stage", "step", "stage_step", "lr", "samples_per_s", "elapsed_s")}
    wall = time.perf_counter() - start
    policy_dir = out_dir / "policy"
    csv_path, png_path = out_dir / "metrics.csv", out_dir / "loss_curve.png"
    if result.is_global_zero:
        from vlakit.policy_io import save_policy

        if result.ema is not None:
            result.ema.copy_to(policy)
        training = {"steps": result.total_steps, "train_wall_s": round(wall, 1), "backend": backend.describe(),
                    "ema_decay": recipe.train.ema_decay,
                    "final_losses": {k: round(v, 5) for k, v in final.items()}}
        if vision_report is not None:
            training["vision_pretrain"] = vision_report
        if stage_data is not None and stage_data.reports:
            training["dagger"] = {name: r.as_dict() for name, r in stage_data.reports.items()}
        save_policy(policy, policy_dir, recipe=recipe, norm_stats=norm_stats, training=training)
        write_metrics_csv(records, csv_path)
        plot_loss_curve(records, png_path, title=f"{recipe.name}: training loss")
    phases["saving"] = time.perf_counter() - t_save
    wall = time.perf_counter() - start
    out = TrainResult(out_dir=out_dir, policy_dir=policy_dir, metrics_csv=csv_path, loss_curve=png_path,
                      wall_s=wall, total_steps=result.total_steps, final_losses=final, phases_s=phases)
    if result.is_global_zero:
        summary = {"recipe": recipe.name, "policy_dir": str(policy_dir), **training, "train_wall_s": round(wall, 1),
                   "phases_s": {k: round(v, 1) for k, v in phases.items()}}
        atomic_write_text(out_dir / "train_summary.json", json.dumps(summary, indent=2) + "\n")
    console.print(f"[bold]time[/]: {out.describe_phases()}")
    return out
