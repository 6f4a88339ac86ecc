"""Load recipes: YAML with ``extends:`` (deep merge, cycle detection) and ``--set`` overrides.

Every problem is reported as a :class:`~vlakit.recipe.errors.RecipeError` naming the file (and
line), the dotted field path, the bad value and the closest valid name.

Merge rules: mappings merge recursively and the child wins; lists and scalars are replaced; a
component spec whose ``type`` changes is replaced whole (its old fields belong to another Config).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vlakit.errors import closest
from vlakit.recipe.errors import RecipeError, RecipeIssue, issues_from_validation

RECIPE_SUFFIXES = (".yaml", ".yml")


# -- finding recipes ---------------------------------------------------------------------------------
def shipped_recipe_dir() -> Path:
    """The recipe folder shipped with vlakit: inside the wheel, or ``recipes/`` of a source checkout."""
    here = Path(__file__).resolve().parent.parent  # .../vlakit
    packaged = here / "_recipes"
    if packaged.is_dir():
        return packaged
    source = here.parent.parent / "recipes"  # src/vlakit -> repo root
    return source


def recipe_dirs() -> list[tuple[str, Path]]:
    """(origin, folder) pairs searched for recipe names: vlakit's own, then plugins'."""
    from vlakit import plugins

    dirs = [("vlakit", shipped_recipe_dir())]
    dirs += plugins.recipe_folders()
    return [(o, d) for o, d in dirs if d.is_dir()]


def available_recipes() -> dict[str, tuple[str, Path]]:
    """Recipe name (file stem) -> (origin, path) for every shipped and plugin recipe."""
    found: dict[str, tuple[str, Path]] = {}
    for origin, folder in recipe_dirs():
        for path in sorted(folder.rglob("*")):
            if (path.suffix in RECIPE_SUFFIXES and path.is_file() and not path.name.startswith("_")
                    and "ablations" not in path.relative_to(folder).parts[:-1]):
                found.setdefault(path.stem, (origin, path))
    return found


def resolve_recipe_path(ref: str | Path, *, relative_to: Path | None = None) -> Path:
    """A path to an existing recipe file, from a path or a recipe name."""
    candidates = []
    ref_path = Path(ref)
    if relative_to is not None and not ref_path.is_absolute():
        candidates.append(relative_to / ref_path)
    candidates.append(ref_path)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    name = ref_path.stem if ref_path.suffix in RECIPE_SUFFIXES else str(ref)
    known = available_recipes()
    if name in known and ref_path.parent in (Path("."), Path("")):
        return known[name][1].resolve()
    suggestion = closest(name, known)
    hint = f" Did you mean {suggestion!r}?" if suggestion else ""
    raise RecipeError([RecipeIssue(
        message=f"recipe {str(ref)!r} is neither an existing file nor a known recipe name.{hint} "
                f"Known recipes: {', '.join(sorted(known)) or '(none)'}",
        file=str(relative_to) if relative_to else None)])


# -- reading YAML with line numbers ------------------------------------------------------------------
@dataclass
class _Doc:
    data: dict[str, Any]
    lines: dict[str, tuple[str, int]] = field(default_factory=dict)  # dotted path -> (file, line)


def _read_yaml(path: Path) -> _Doc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError([RecipeIssue(message=f"cannot read recipe: {exc.strerror or exc}", file=str(path))]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, tuple[str, int]] = {}
        data = _construct(loader, node, (), lines, str(path)) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise RecipeError([RecipeIssue(message=f"malformed YAML: {problem}", file=str(path), line=line)]) from None
    except yaml.YAMLError as exc:
        raise RecipeError([RecipeIssue(message=f"malformed YAML: {exc}", file=str(path))]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise RecipeError([RecipeIssue(message=f"a recipe must be a YAML mapping, got {type(data).__name__}",
                                       file=str(path), line=1)])
    return _Doc(data, lines)


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, lines: dict, file: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise RecipeError([RecipeIssue(message=f"duplicate key {key!r}", path=".".join(map(str, path + (key,))),
                                               file=file, line=key_node.start_mark.line + 1)])
            sub = path + (key,)
            lines[".".join(map(str, sub))] = (file, key_node.start_mark.line + 1)
            out[key] = _construct(loader, value_node, sub, lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, n, path + (i,), lines, file) for i, n in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


# -- extends and merging -----------------------------------------------------------------------------
def deep_merge(base: Any, child: Any) -> Any:
    """Merge ``child`` over ``base`` (see module docstring for the rules)."""
    if isinstance(base, dict) and isinstance(child, dict):
        if "type" in child and "type" in base and child["type"] != base["type"]:
            return copy.deepcopy(child)
        out = copy.deepcopy(base)
        for key, value in child.items():
            out[key] = deep_merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(child)


def _load_merged(path: Path, stack: tuple[Path, ...]) -> _Doc:
    if path in stack:
        chain = " -> ".join(str(p) for p in stack + (path,))
        raise RecipeError([RecipeIssue(message=f"`extends` cycle: {chain}", path="extends", file=str(path))])
    doc = _read_yaml(path)
    parents = doc.data.pop("extends", None)
    if parents is None:
        return doc
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise RecipeError([RecipeIssue(message="`extends` must be a recipe path/name or a list of them",
                                       path="extends", file=str(path), line=doc.lines.get("extends", (None, None))[1],
                                       value=parents, has_value=True)])
    merged = _Doc({}, {})
    for parent in parents:
        try:
            parent_path = resolve_recipe_path(parent, relative_to=path.parent)
        except RecipeError as exc:
            issue = exc.issues[0]
            raise RecipeError([RecipeIssue(message=f"`extends` target not found: {issue.message}", path="extends",
                                           file=str(path), line=doc.lines.get("extends", (None, None))[1])]) from None
        parent_doc = _load_merged(parent_path, stack + (path,))
        merged = _Doc(deep_merge(merged.data, parent_doc.data), {**merged.lines, **parent_doc.lines})
    return _Doc(deep_merge(merged.data, doc.data), {**merged.lines, **doc.lines})


# -- overrides ------------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[list[str], str]:
    if "=" not in text:
        raise RecipeError([RecipeIssue(message=f"override {text!r} must look like dotted.path=value",
                                       file="--set")])
    key, _, value = text.partition("=")
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise RecipeError([RecipeIssue(message=f"override {text!r} has an empty path segment", file="--set")])
    return parts, value


def apply_override(data: dict[str, Any], text: str) -> None:
    """Apply ``dotted.path=value`` in place. The path must exist; the value is parsed as YAML
    unless the field currently holds a string (then it is kept as text)."""
    parts, raw = parse_override(text)
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        key = _key_in(node, part)
        if key is None:
            _bad_path(node, parts, i, text)
        node = node[key]
    last = parts[-1]
    key = _key_in(node, last)
    if key is None:
        _bad_path(node, parts, len(parts) - 1, text)
    current = node[key]
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise RecipeError([RecipeIssue(message=f"cannot parse value {raw!r}: {exc}", path=".".join(parts),
                                       file="--set")]) from None
    if isinstance(current, str) and not isinstance(value, (dict, list)) and value is not None:
        value = raw
    if key == "type" and isinstance(node, dict) and value != current:
        node.clear()  # a new component type: its old fields belong to another Config
    if isinstance(node, list):
        node[key] = value
    else:
        node[key] = value


def _key_in(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return part if part in node else None
    if isinstance(node, list) and part.lstrip("-").isdigit():
        idx = int(part)
        return idx if -len(node) <= idx < len(node) else None
    return None


def _bad_path(node: Any, parts: list[str], i: int, text: str) -> None:
    prefix = ".".join(parts[:i]) or "<root>"
    if isinstance(node, dict):
        valid = sorted(map(str, node))
        suggestion = closest(parts[i], valid)
        msg = f"no field {parts[i]!r} under {prefix}. Valid: {', '.join(valid)}"
    elif node is None:
        valid, suggestion = [], None
        msg = f"{prefix} is not set; give the section as a whole, e.g. --set '{prefix}={{{parts[i]}: ...}}'"
    else:
        valid, suggestion = [], None
        msg = f"{prefix} is a {type(node).__name__}, it has no field {parts[i]!r}"
    raise RecipeError([RecipeIssue(message=f"override {text!r}: {msg}", path=".".join(parts[: i + 1]),
                                   file="--set", suggestion=suggestion)])


# -- the public entry point ----------------------------------------------------------------------------
def load_recipe(path_or_name: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Load, merge, override and validate a recipe. Returns a :class:`~vlakit.recipe.schema.Recipe`.

    Raises :class:`RecipeError` listing every problem found.
    """
    from pydantic import ValidationError

    from vlakit.recipe.schema import Recipe

    path = resolve_recipe_path(path_or_name)
    doc = _load_merged(path, ())
    data = doc.data
    override_paths: dict[str, str] = {}

    def locate(dotted: str) -> tuple[str | None, int | None]:
        probe = dotted
        while probe:
            if probe in override_paths:
                return "--set " + override_paths[probe], None
            if probe in doc.lines:
                return doc.lines[probe]
            probe = probe.rpartition(".")[0]
        return str(path), None

    if overrides:
        try:  # overrides address the fully resolved recipe (defaults included) when it validates
            data = Recipe.model_validate(data).model_dump(mode="python")
        except ValidationError:
            pass
        data = copy.deepcopy(data)
        for text in overrides:
            apply_override(data, text)
            override_paths[text.partition("=")[0].strip()] = text
            try:  # e.g. after `backend.type=cpu`, later overrides may address the cpu Config's defaults
                data = Recipe.model_validate(data).model_dump(mode="python")
            except ValidationError:
                pass
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, root_model=Recipe, locate=locate)
        raise RecipeError(issues, header=f"recipe {path} is invalid ({len(issues)} problem"
                                         f"{'s' if len(issues) != 1 else ''}):") from None


def recipe_to_yaml(recipe: Any) -> str:
    """The fully resolved recipe as YAML (component defaults included)."""
    data = recipe.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
