"""The self-contained policy folder: save a trained policy, load it back, run it on raw observations.

Layout (nothing pickled)::

    policy/
      vlakit_policy.json     format version, vlakit version, component types, parameter count
      model.safetensors      weights (EMA weights when the run used EMA)
      recipe.yaml            the fully resolved recipe (no `extends`, every default filled)
      norm_stats.json        normalisation statistics of state and actions
      text_tokenizer/        the text tokenizer's files
      action_tokenizer/      the action tokenizer's files (only when the recipe has one)
      README.md              a short model card

A load that cannot rebuild the exact policy raises :class:`PolicyLoadError` -- never random weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlakit.errors import VlakitError

FORMAT = "vlakit-policy"
FORMAT_VERSION = 1
META_FILE = "vlakit_policy.json"


class PolicyLoadError(VlakitError):
    """A policy folder is missing a file, or its contents do not match the recipe it carries."""


def save_policy(policy: Any, folder: str | Path, *, recipe: Any, norm_stats: Any,
                training: dict[str, Any] | None = None) -> Path:
    """Write ``policy`` as a self-contained folder (atomically: complete or absent).

    Args:
        policy: a VLAPolicy (``text_tokenizer``, ``action_tokenizer`` attributes; tokenizers ``save``).
        folder: destination; an existing folder is replaced only once the new one is complete.
        recipe: the resolved :class:`~vlakit.recipe.schema.Recipe` the policy was built from.
        norm_stats: the :class:`NormStats` used in training (``.save(path)``).
        training: facts for the model card (steps, wall time, final losses, ...).
    Returns: the folder path.
    """
    from safetensors.torch import save_model

    import vlakit
    from vlakit.io import atomic_dir
    from vlakit.recipe.load import recipe_to_yaml

    folder = Path(folder)
    num_params = sum(p.numel() for p in policy.parameters())
    with atomic_dir(folder) as tmp:
        save_model(policy, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        (tmp / "recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
        norm_stats.save(tmp / "norm_stats.json")
        policy.text_tokenizer.save(tmp / "text_tokenizer")
        if policy.action_tokenizer is not None:
            policy.action_tokenizer.save(tmp / "action_tokenizer")
        model = recipe.model
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "vlakit_version": vlakit.__version__,
                "recipe": recipe.name, "num_parameters": num_params,
                "components": {"vision": model.vision.type, "language": model.language.type,
                               "state": model.state.type, "text_tokenizer": model.text_tokenizer.type,
                               "action_tokenizer": model.action_tokenizer.type if model.action_tokenizer else None,
                               "heads": sorted(model.heads)},
                "training": training or {}}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_model_card(recipe, meta), encoding="utf-8")
    return folder


def _model_card(recipe: Any, meta: dict[str, Any]) -> str:
    m = recipe.model
    lines = [f"# {recipe.name}", "", recipe.description or "A vlakit vision-language-action policy.", "",
             f"- parameters: {meta['num_parameters']:,}",
             f"- vision: `{m.vision.type}`, language: `{m.language.type}`, state: `{m.state.type}`",
             f"- heads: {', '.join(f'`{h}`' for h in sorted(m.heads))}; actions from `{m.inference.actions_from}`"
             + (", hierarchical (predicts the subtask first)" if m.inference.predict_subtask else ""),
             f"- cameras: {', '.join(m.cameras)}; horizon {m.horizon}; max action dim {m.max_action_dim}"]
    if recipe.data is not None:
        lines.append(f"- trained on: {', '.join(f'{k} (`{v.type}`)' for k, v in recipe.data.sources.items())}")
    for key, value in (meta.get("training") or {}).items():
        lines.append(f"- {key.replace('_', ' ')}: {value}")
    lines += ["", "Load and run it:", "", "```python", "import vlakit",
              "policy = vlakit.load_policy('path/to/this/folder')",
              "result = policy.infer(observation)  # {'actions': [H, action_dim], 'subtask': ...}", "```",
              "", "Evaluate it: `vlakit eval path/to/this/folder --split unseen`.", ""]
    return "\n".join(lines)


def _require(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.exists():
        raise PolicyLoadError(f"policy folder {folder} is missing {name}; it is not a complete vlakit policy "
                              f"(save_policy writes it)")
    return path


def load_policy(folder: str | Path, *, backend: Any = "auto", precision: str | None = None) -> LoadedPolicy:
    """Load a folder written by :func:`save_policy`.

    Args:
        folder: the policy folder.
        backend: a backend type name or Config (default ``auto``: the best available here).
        precision: inference precision override (e.g. ``"32-true"``); default: the backend's.
    Raises:
        PolicyLoadError: a file is missing or malformed, or the weights do not match the recipe.
    """
    from safetensors.torch import load_model

    from vlakit.backends import select_backend
    from vlakit.recipe.build import build_policy
    from vlakit.recipe.load import load_recipe
    from vlakit.registry import ACTION_TOKENIZERS, TEXT_TOKENIZERS

    folder = Path(folder)
    if not folder.is_dir():
        raise PolicyLoadError(f"policy folder {folder} does not exist")
    meta_path = _require(folder, META_FILE)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyLoadError(f"{meta_path} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise PolicyLoadError(f"{meta_path}: unsupported format {meta.get('format')!r} version "
                              f"{meta.get('format_version')!r} (this vlakit reads {FORMAT} v{FORMAT_VERSION})")
    recipe = load_recipe(_require(folder, "recipe.yaml"))
    weights = _require(folder, "model.safetensors")
    norm_stats = _load_norm_stats(_require(folder, "norm_stats.json"))
    text_cls = TEXT_TOKENIZERS.get(recipe.model.text_tokenizer.type)
    text_loader = getattr(text_cls, "load", None)
    if text_loader is None:  # the built-ins save an hf_json spec + tokenizer.json
        from vlakit.components.text import load_text_tokenizer as text_loader
    text_tok = _load_tokenizer(text_loader, _require(folder, "text_tokenizer"))
    action_tok = None
    if recipe.model.action_tokenizer is not None:
        action_cls = ACTION_TOKENIZERS.get(recipe.model.action_tokenizer.type)
        action_tok = _load_tokenizer(action_cls.load, _require(folder, "action_tokenizer"))
    chosen = select_backend(backend, precision=precision)
    policy = build_policy(recipe, device="cpu", text_tokenizer=text_tok, action_tokenizer=action_tok)
    try:
        missing, unexpected = load_model(policy, str(weights), strict=False)
    except Exception as exc:
        raise PolicyLoadError(f"cannot load {weights} into the policy its recipe builds: {exc}") from None
    if missing or unexpected:
        raise PolicyLoadError(f"{weights} does not match the policy built from {folder / 'recipe.yaml'}: "
                              f"missing {sorted(missing)[:8]}, unexpected {sorted(unexpected)[:8]}")
    policy.to(chosen.device).eval()
    return LoadedPolicy(policy=policy, recipe=recipe, norm_stats=norm_stats, folder=folder, backend=chosen,
                        meta=meta)


def init_weights(policy: Any, *, path: str | Path, include: list[str], exclude: list[str] = ()) -> list[str]:
    """Copy tensors named ``include*`` (and not ``exclude*``) from a policy folder or safetensors file.

    Returns the copied names. Raises :class:`PolicyLoadError` when the file is missing, a selected
    tensor is absent or has another shape, or nothing is selected.
    """
    import torch
    from safetensors import safe_open

    own = policy.state_dict()
    names = [n for n in own if n.startswith(tuple(include)) and not n.startswith(tuple(exclude))]
    if not names:
        raise PolicyLoadError(f"train.init: no policy tensor starts with {include} (excluding {list(exclude)})")
    path = Path(path)
    file = path / "model.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise PolicyLoadError(f"train.init.path: {file} does not exist (expected a policy folder or a "
                              f".safetensors file)")
    try:
        with safe_open(str(file), framework="pt") as f:
            available = set(f.keys())
            loaded = {n: f.get_tensor(n) for n in names if n in available}
    except Exception as exc:
        raise PolicyLoadError(f"cannot read {file}: {exc}") from None
    missing = [n for n in names if n not in loaded]
    if missing:
        raise PolicyLoadError(f"{file} lacks {len(missing)} tensor(s) the init selects, e.g. {missing[:5]}")
    wrong = [f"{n}: file {tuple(t.shape)} vs policy {tuple(own[n].shape)}" for n, t in loaded.items()
             if t.shape != own[n].shape]
    if wrong:
        raise PolicyLoadError(f"{file}: shapes differ from the policy the recipe builds: {wrong[:5]}")
    with torch.no_grad():
        for n, t in loaded.items():
            own[n].copy_(t.to(own[n].dtype))
    return names


def _load_tokenizer(load: Any, folder: Path) -> Any:
    try:
        return load(folder)
    except VlakitError:
        raise
    except Exception as exc:
        raise PolicyLoadError(f"cannot load tokenizer from {folder}: {type(exc).__name__}: {exc}") from None


def _load_norm_stats(path: Path) -> Any:
    from vlakit.data import NormStats

    try:
        return NormStats.load(path)
    except VlakitError:
        raise
    except Exception as exc:
        raise PolicyLoadError(f"cannot read norm stats {path}: {type(exc).__name__}: {exc}") from None


@dataclass
class InferenceResult:
    """Actions for a batch of raw observations.

    Attributes:
        actions: float32 ``[B, H, action_dim]`` in the environment's (unnormalised) units; rows where
            ``valid`` is False are NaN and must not be executed.
        valid: bool ``[B]``.
        errors: B messages (None where valid).
        subtask: B predicted subtask strings, or None when the policy does not predict them.
        latency_s: wall time of the whole call (transforms + model).
        points: float32 ``[B, P]`` where the subtask happens (table coordinates) from the policy's
            point query (``model.point_query``), or None.
    """

    actions: np.ndarray
    valid: np.ndarray
    errors: list[str | None]
    subtask: list[str | None] | None
    latency_s: float
    points: np.ndarray | None = None


@dataclass
class LoadedPolicy:
    """A policy plus everything around it: recipe, norm stats, backend. Acts on raw observations."""

    policy: Any
    recipe: Any
    norm_stats: Any
    folder: Path
    backend: Any
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        self._transforms: dict[tuple[str, tuple], Any] = {}

    @property
    def robot_types(self) -> list[str]:
        """Robot types the norm stats cover (the policy can drive these embodiments)."""
        return sorted(self.norm_stats.entries)

    def transform(self, *, robot_type: str | None = None, camera_map: dict[str, str] | None = None) -> Any:
        """The :class:`~vlakit.data.ObservationTransform` for one embodiment (cached).

        ``robot_type`` may be omitted when the norm stats cover exactly one robot type.
        """
        from vlakit.data import ObservationTransform

        if robot_type is None:
            if len(self.robot_types) != 1:
                raise VlakitError(f"policy {self.folder} was trained on robot types {self.robot_types}; say which "
                                  f"one to drive (robot_type=...)")
            robot_type = self.robot_types[0]
        key = (robot_type, tuple(sorted((camera_map or {}).items())))
        if key not in self._transforms:
            self._transforms[key] = ObservationTransform(
                cameras=self.recipe.model.cameras, max_action_dim=self.recipe.model.max_action_dim,
                norm_stats=self.norm_stats, robot_type=robot_type, camera_map=camera_map,
                image_size=getattr(self.recipe.data, "image_size", None) if self.recipe.data else None)
        return self._transforms[key]

    @property
    def metadata(self) -> dict[str, Any]:
        """Sent to websocket clients on connect (see :mod:`vlakit.serving`)."""
        return {"recipe": self.recipe.name, "horizon": self.recipe.model.horizon,
                "cameras": list(self.recipe.model.cameras), "robot_types": self.robot_types,
                "vlakit_version": self.meta.get("vlakit_version")}

    def infer_batch(self, observations: list[Any], *, robot_type: str | None = None,
                    camera_map: dict[str, str] | None = None, noise: Any = None,
                    subtask: list[str] | None = None) -> InferenceResult:
        """Raw :class:`~vlakit.interfaces.env.EnvObservation` list -> unnormalised action chunks.
        ``subtask`` (one text per observation) replaces the predicted subtask (see
        :meth:`~vlakit.policy.VLAPolicy.sample_actions`)."""
        import torch

        start = time.perf_counter()
        transform = self.transform(robot_type=robot_type, camera_map=camera_map)
        obs = transform(list(observations)).to(self.backend.device)
        with torch.inference_mode(), self.backend.autocast():
            chunk = self.policy.sample_actions(obs, noise=noise, num_steps=self.recipe.model.inference.num_steps,
                                               subtask=subtask)
        valid = chunk.valid.cpu().numpy().astype(bool)
        actions = transform.unnormalize_actions(chunk.actions.float()).astype(np.float32)
        actions[~valid] = np.nan  # never hand out numbers for a chunk that failed to decode
        points = chunk.points.float().cpu().numpy() if chunk.points is not None else None
        return InferenceResult(actions=actions, valid=valid, errors=list(chunk.errors), subtask=chunk.subtask,
                               latency_s=time.perf_counter() - start, points=points)

    def infer(self, observation: Any, *, robot_type: str | None = None) -> dict[str, Any]:
        """One observation (EnvObservation, or a dict with ``images``, ``state``, ``prompt``) -> result dict
        ``{"actions": [H, action_dim], "subtask": str|None}``. Raises if decoding failed."""
        from vlakit.interfaces.env import EnvObservation

        if isinstance(observation, dict):
            observation = EnvObservation(images=dict(observation["images"]),
                                         state=np.asarray(observation["state"], dtype=np.float32),
                                         prompt=str(observation["prompt"]))
        result = self.infer_batch([observation], robot_type=robot_type)
        if not result.valid[0]:
            raise VlakitError(f"the policy produced no valid action chunk: {result.errors[0]}")
        return {"actions": result.actions[0],
                "subtask": result.subtask[0] if result.subtask is not None else None}
