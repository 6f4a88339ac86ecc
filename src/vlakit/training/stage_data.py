"""The data each training stage reads: the recipe's mixture, reweighted by the stage's ``mixture``,
plus the on-policy corrections collected before it (``dagger`` stages, :mod:`vlakit.training.dagger`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vlakit.errors import VlakitError
from vlakit.training.dagger import (
    SOURCE_PREFIX,
    DaggerReport,
    collect,
    collection_args,
    dagger_dir,
    reused_report,
    with_corrections,
)


def with_weights(data_spec: Any, weights: dict[str, float]) -> Any:
    """``data_spec`` with the named sources' weights replaced (a stage's ``mixture``)."""
    sources = {n: (s.model_copy(update={"weight": float(weights[n])}) if n in weights else s)
               for n, s in data_spec.sources.items()}
    return data_spec.model_copy(update={"sources": sources})


class StageData:
    """The data each stage trains on, for :func:`~vlakit.training.stages.run_stages`: the recipe's
    mixture, reweighted by the stage's ``mixture`` if it has one, plus the corrections collected
    before this and every earlier ``dagger`` stage.

    ``make_feed(data_spec)`` builds a :class:`~vlakit.training.data.DataFeed` for a mixture; a stage
    gets the same feed object as the one before it while its mixture is the same (so its data position
    carries over), a new one when the mixture changes (corrections join, or the stage reweights sources).
    """

    def __init__(self, *, recipe: Any, out_dir: Path, norm_stats: Any, backend: Any, make_feed: Any,
                 base_feed: Any, console: Any, progress: bool) -> None:
        self.recipe = recipe
        self.out_dir = Path(out_dir)
        self.norm_stats = norm_stats
        self.backend = backend
        self.make_feed = make_feed
        self.console = console
        self.progress = progress
        self._base_feed = base_feed
        self._feeds: dict[int, Any] = {}
        self.reports: dict[str, DaggerReport] = {}

    def _collected(self, index: int) -> dict[str, tuple[Path, float, str]]:
        """``source name -> (dataset folder, weight, like)`` of the dagger stages up to ``index``."""
        out = {}
        for i, stage in enumerate(self.recipe.train.stages[: index + 1]):
            if stage.dagger is not None:
                out[f"{SOURCE_PREFIX}{stage.name}"] = (dagger_dir(self.out_dir, i, stage.name), stage.dagger.weight,
                                                       stage.dagger.like)
        return out

    def _key(self, index: int) -> tuple[str, ...]:
        mixture = self.recipe.train.stages[index].mixture or {}
        return (*self._collected(index), *(f"{n}={float(w)!r}" for n, w in sorted(mixture.items())))

    def feed(self, index: int) -> Any:
        """Stage ``index``'s feed: the previous stage's feed object while the mixture stays the same (its
        data position carries over), else a new one that starts from the beginning -- also when an
        earlier stage had the same mixture, so a resumed run reads the same batches as an unbroken one."""
        if index not in self._feeds:
            key = self._key(index)
            if index > 0 and key == self._key(index - 1):
                self._feeds[index] = self.feed(index - 1)
            elif index == 0 and not key:
                self._feeds[index] = self._base_feed
            else:
                spec = with_weights(self.recipe.data, self.recipe.train.stages[index].mixture or {})
                for name, (path, weight, like) in self._collected(index).items():  # in stage order
                    spec = with_corrections(spec, name=name, path=path, weight=weight, like=like)
                self._feeds[index] = self.make_feed(spec)
        return self._feeds[index]

    def prepare(self, index: int, *, policy: Any, ema: Any, step: int, started: bool) -> None:
        """Before stage ``index`` trains: collect its corrections (or check they are there)."""
        from vlakit.data.generate import is_complete

        earlier = self._collected(index - 1).values() if index > 0 else []
        for path, _weight, _like in earlier:
            if not is_complete(path):
                raise VlakitError(f"dagger: the corrections of an earlier stage are missing at {path}; they cannot "
                                  "be collected again with the weights of that time. Start the run afresh")
        stage = self.recipe.train.stages[index]
        if stage.dagger is None:
            return
        path = dagger_dir(self.out_dir, index, stage.name)
        args = collection_args(stage.dagger, stage=stage.name, step=step)
        if started:
            if not is_complete(path, args):
                raise VlakitError(f"dagger: stage {stage.name!r} has started but its corrections are missing or "
                                  f"were collected otherwise at {path}; they cannot be collected again with the "
                                  "weights of that time. Start the run afresh")
            self.reports[stage.name] = reused_report(path)
            return
        self.reports[stage.name] = report = self._collect(stage, path, args, policy=policy, ema=ema)
        self.console.print(f"[bold]dagger[/] ({stage.name}): {report.summary()}")

    def _collect(self, stage: Any, path: Path, args: dict[str, Any], *, policy: Any, ema: Any) -> DaggerReport:
        from vlakit.policy_io import LoadedPolicy

        raw = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        was_training = policy.training
        try:
            if ema is not None:  # roll out what would be deployed
                with torch.no_grad():
                    ema.copy_to(policy)
            policy.to(self.backend.device).eval()
            loaded = LoadedPolicy(policy=policy, recipe=self.recipe, norm_stats=self.norm_stats, folder=self.out_dir,
                                  backend=self.backend, meta={})
            return collect(loaded, stage.dagger, path, args=args, progress=self.progress)
        finally:
            policy.load_state_dict(raw)
            policy.train(was_training)
