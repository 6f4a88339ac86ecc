"""Per-stage data mixtures (``train.stages[].mixture``): validation, which feed a stage gets, and a
run whose stages reweight the sources -- what each stage trains on, and an exact resume."""

from __future__ import annotations

import multiprocessing
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from vlakit.recipe.errors import RecipeError
from vlakit.recipe.load import load_recipe
from vlakit.training.run import train_recipe
from vlakit.training.stage_data import StageData

QUIET = Console(file=open("/dev/null", "w"))


def _stages(*mixtures: str) -> str:
    rows = [f"{{name: s{i}, steps: 3, losses: {{text: 1.0, flow_matching: 10.0}}{', mixture: ' + m if m else ''}}}"
            for i, m in enumerate(mixtures)]
    return "train.stages=[" + ", ".join(rows) + "]"


@pytest.mark.parametrize(("mixture", "message"), [
    ("{robots: 0}", r"names source\(s\) \['robots'\]"),
    ("{robot: 0, subtasks: 0, vqa: 0, pointing: 0}", "leaves every source at weight 0"),
    ("{robot: -1}", "must be >= 0"),
])
def test_a_stage_mixture_must_name_sources_and_keep_one(mixture, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("pi05_tabletop_tiny", [_stages("", mixture)])


def test_a_stage_gets_the_previous_feed_only_while_its_mixture_stays_the_same():
    recipe = load_recipe("pi05_tabletop_tiny", [_stages("", "{vqa: 0, subtasks: 0}", "{vqa: 0, subtasks: 0}", "")])
    built = []

    def make_feed(spec):
        built.append({n: s.weight for n, s in spec.sources.items()})
        return SimpleNamespace(index=len(built))

    base = SimpleNamespace(index=0)
    data = StageData(recipe=recipe, out_dir="/unused", norm_stats=None, backend=None, make_feed=make_feed,
                     base_feed=base, console=QUIET, progress=False)
    assert data.feed(0) is base
    assert data.feed(1) is data.feed(2) is not base
    recipe_weights = {n: s.weight for n, s in recipe.data.sources.items()}
    assert built[0] == {**recipe_weights, "subtasks": 0.0, "vqa": 0.0}  # sources it does not name keep theirs
    assert built[0]["robot"] == 0.8 and len(built[0]) >= 3
    # back to the recipe's mixture: a fresh feed (from the beginning), not stage 0's half-read one
    assert data.feed(3) not in (base, data.feed(1))
    assert built[1] == {n: s.weight for n, s in recipe.data.sources.items()}


class _Sources(pl.Callback):
    def __init__(self):
        self.by_stage = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.by_stage.setdefault(module.stage.name, set()).update(batch[0].source)


class _BatchProcesses(pl.Callback):
    """The most background batch processes alive at once during training."""

    def __init__(self):
        self.most = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.most = max(self.most, len(_batch_processes()))


def _batch_processes():
    return [p for p in multiprocessing.active_children() if p.name == "vlakit-batches"]


class _Kill(pl.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if module.stage.name == "s2" and trainer.global_step == 1:
            raise RuntimeError("simulated kill")


def test_stages_train_on_their_mixture_and_a_killed_run_resumes_exactly(tmp_path):
    recipe = load_recipe("pi05_tabletop_tiny", [f"data.cache_dir={tmp_path / 'cache'}", "backend.type=cpu",
                                                "train.vision_pretrain=null",
                                                _stages("{vqa: 0, subtasks: 0}", "", "{vqa: 0, subtasks: 0}")])
    seen = _Sources()
    full = train_recipe(recipe, out_dir=tmp_path / "a", console=QUIET, progress=False, extra_callbacks=[seen])
    assert seen.by_stage["s0"] == seen.by_stage["s2"] == {"robot"}
    assert {"vqa", "subtasks"} & seen.by_stage["s1"]

    # the killed run makes its batches in a background process (data.prefetch): the same stream, and
    # positions exact enough to resume to the same weights
    ahead = recipe.model_copy(update={"data": recipe.data.model_copy(update={"prefetch": 2})})
    alive = _BatchProcesses()
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_recipe(ahead, out_dir=tmp_path / "b", console=QUIET, progress=False, extra_callbacks=[_Kill(), alive])
    assert not _batch_processes()  # a crashed run stops its batch processes
    resumed = train_recipe(ahead, out_dir=tmp_path / "b", resume=True, console=QUIET, progress=False,
                           extra_callbacks=[alive])
    # each stage's mixture has its own feed; the previous stage's batch process stops when it is replaced
    assert alive.most == 1 and not _batch_processes()
    a = load_file(str(full.policy_dir / "model.safetensors"))
    b = load_file(str(resumed.policy_dir / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
