"""Ablation studies: one base recipe, named variants that are recipe *diffs*, one comparison table.

A study file (``recipes/ablations/*.yaml`` or any path)::

    name: pi05_tabletop_parts
    base: pi05_tabletop            # recipe name or path (relative to the study file)
    overrides: [train.stages.0.steps=100]   # optional, applied to every variant (--set syntax)
    variants:
      baseline: {}
      conv_vision: {model: {vision: {type: conv}}}
      no_subtask: {model: {inference: {predict_subtask: false}}}

Each variant is deep-merged over the base with the same rules as ``extends`` (a component whose
``type`` changes is replaced whole), then validated. Every variant is validated before anything
runs, and every failure is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from vlakit.config import FrozenModel
from vlakit.recipe.errors import RecipeError, RecipeIssue, issues_from_validation

ABLATIONS_DIRNAME = "ablations"


class StudySpec(FrozenModel):
    name: str
    description: str = ""
    base: str
    overrides: list[str] = Field(default_factory=list)
    variants: dict[str, dict[str, Any]] = Field(min_length=1)


@dataclass
class Study:
    spec: StudySpec
    path: Path
    base_path: Path
    recipes: dict[str, Any] = field(default_factory=dict)  # variant name -> Recipe
    diffs: dict[str, dict[str, Any]] = field(default_factory=dict)


def find_study(ref: str | Path) -> Path:
    """A study file from a path or a study name shipped in ``recipes/ablations/``."""
    from vlakit.errors import closest
    from vlakit.recipe.load import recipe_dirs

    path = Path(ref)
    if path.is_file():
        return path.resolve()
    known: dict[str, Path] = {}
    for _, folder in recipe_dirs():
        for p in sorted((folder / ABLATIONS_DIRNAME).glob("*.y*ml")):
            known.setdefault(p.stem, p)
    if str(ref) in known:
        return known[str(ref)].resolve()
    hint = closest(str(ref), known)
    raise RecipeError([RecipeIssue(
        message=f"ablation study {str(ref)!r} is neither a file nor a known study."
                + (f" Did you mean {hint!r}?" if hint else "")
                + f" Known studies: {', '.join(sorted(known)) or '(none)'}")])


def load_study(ref: str | Path, *, extra_overrides: list[str] | tuple[str, ...] = ()) -> Study:
    """Load a study and validate every variant; raises RecipeError listing all problems."""
    from vlakit.recipe.load import _load_merged, apply_override, deep_merge, resolve_recipe_path
    from vlakit.recipe.schema import Recipe

    path = find_study(ref)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError([RecipeIssue(message=f"malformed YAML: {exc}", file=str(path))]) from None
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(issues_from_validation(exc, root_model=StudySpec, locate=lambda p: (str(path), None)),
                          header=f"ablation study {path} is invalid:") from None
    base_path = resolve_recipe_path(spec.base, relative_to=path.parent)
    base = _load_merged(base_path, ()).data
    study = Study(spec=spec, path=path, base_path=base_path)
    issues: list[RecipeIssue] = []
    for name, diff in spec.variants.items():
        data = deep_merge(base, diff or {})
        data["name"] = f"{data.get('name', 'recipe')}--{name}"
        try:
            if spec.overrides or extra_overrides:
                data = Recipe.model_validate(data).model_dump(mode="python")
                for text in [*spec.overrides, *extra_overrides]:
                    apply_override(data, text)
            study.recipes[name] = Recipe.model_validate(data)
            study.diffs[name] = diff or {}
        except ValidationError as exc:
            for issue in issues_from_validation(exc, root_model=Recipe):
                issues.append(RecipeIssue(message=issue.message, path=issue.path, file=f"{path} [variant {name}]",
                                          suggestion=issue.suggestion, value=issue.value, has_value=issue.has_value))
        except RecipeError as exc:
            issues += [RecipeIssue(message=i.message, path=i.path, file=f"{path} [variant {name}]",
                                   suggestion=i.suggestion) for i in exc.issues]
    if issues:
        raise RecipeError(issues, header=f"ablation study {path}: {len(issues)} problem(s):")
    return study


def flatten_diff(diff: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"model": {"vision": {"type": "conv"}}}`` -> ``["model.vision.type=conv"]`` (for tables)."""
    out: list[str] = []
    for key, value in diff.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += flatten_diff(value, dotted + ".")
        else:
            out.append(f"{dotted}={value}")
    return out
