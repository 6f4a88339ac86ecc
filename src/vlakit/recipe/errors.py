"""Recipe errors that name the file, the dotted field path, the bad value and the closest valid name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vlakit.errors import VlakitError, closest


@dataclass(frozen=True)
class RecipeIssue:
    """One problem in a recipe."""

    message: str
    path: str = ""  #: dotted field path, e.g. "model.vision.variant"
    file: str | None = None
    line: int | None = None
    value: Any = None
    has_value: bool = False
    suggestion: str | None = None

    def format(self) -> str:
        where = self.file or "<recipe>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.has_value and "got" not in self.message:
            text += f" (got {_short(self.value)})"
        if self.suggestion and "Did you mean" not in self.message:
            text += f" Did you mean {self.suggestion!r}?"
        return text


class RecipeError(VlakitError):
    """One or more problems in a recipe; ``issues`` lists every one found."""

    def __init__(self, issues: list[RecipeIssue], *, header: str | None = None) -> None:
        self.issues = list(issues)
        self.header = header
        super().__init__(self.format())

    def format(self) -> str:
        lines = [self.header] if self.header else []
        if len(self.issues) == 1 and not self.header:
            return self.issues[0].format()
        lines += [f"  - {i.format()}" for i in self.issues]
        return "\n".join(lines)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _fields_at(model_cls: Any, loc: tuple) -> list[str] | None:
    """Names of the fields valid at ``loc`` (walking pydantic models and dicts), or None."""
    from pydantic import BaseModel

    cls = model_cls
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
        field = cls.model_fields.get(str(part))
        if field is None:
            return None
        cls = _model_in(field.annotation)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return sorted(cls.model_fields)
    return None


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside ``annotation`` (unwrapping Optional/list/dict), or None."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def issues_from_validation(exc: Any, *, root_model: Any, locate: Any = None,
                           loc_prefix: tuple = ()) -> list[RecipeIssue]:
    """Turn a pydantic ValidationError into RecipeIssues; ``locate(path) -> (file, line)``."""
    out: list[RecipeIssue] = []
    for err in exc.errors():
        loc = loc_prefix + tuple(err["loc"])
        ctx = err.get("ctx") or {}
        if err["type"] == "component_invalid":
            for sub in ctx.get("nested", []):
                sub_loc = loc + tuple(sub["loc"])
                out.append(_issue(sub["type"], sub["msg"], sub_loc, sub.get("input"), sub.get("valid"), locate))
            continue
        if err["type"] == "component_type_unknown":
            sub_loc = loc + tuple(ctx.get("subloc", ()))
            file, line = locate(_dotted(sub_loc)) if locate else (None, None)
            out.append(RecipeIssue(message=err["msg"], path=_dotted(sub_loc), file=file, line=line))
            continue
        valid = _fields_at(root_model, loc[:-1]) if err["type"] == "extra_forbidden" else None
        out.append(_issue(err["type"], err["msg"], loc, err.get("input"), valid, locate, ctx=ctx))
    return out


def _issue(etype: str, msg: str, loc: tuple, value: Any, valid: list[str] | None, locate: Any,
           ctx: dict | None = None) -> RecipeIssue:
    path = _dotted(loc)
    file, line = locate(path) if locate else (None, None)
    suggestion = None
    if etype == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        msg = f"unknown field {name!r}"
        if valid:
            msg += f". Valid fields here: {', '.join(valid)}"
            suggestion = closest(name, valid)
        return RecipeIssue(message=msg, path=path, file=file, line=line, suggestion=suggestion)
    if etype == "missing":
        return RecipeIssue(message="required field is missing", path=path, file=file, line=line)
    expected = (ctx or {}).get("expected")
    if etype in ("literal_error", "enum") or (expected and "'" in str(expected)):
        options = re.findall(r"'([^']*)'", str(expected or msg))
        suggestion = closest(str(value), options) if options else None
    return RecipeIssue(message=msg, path=path, file=file, line=line, value=value, has_value=True,
                       suggestion=suggestion)
