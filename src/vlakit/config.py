"""Base classes for typed, frozen configuration.

Every component has a ``Config`` (a :class:`ComponentConfig` subclass) whose ``type`` field is a
``Literal`` naming the component. The literal is the registry key: the name is written once, at
the definition site (STYLE 4).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    """A frozen pydantic model that rejects unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class ComponentConfig(FrozenModel):
    """Config of one registered component.

    Subclasses declare ``type: Literal["name"] = "name"`` and implement :meth:`build`. The keyword
    arguments ``build`` accepts are documented by the interface of the component's kind (e.g. the
    vision encoder builder receives the backbone width to project to).
    """

    type: str
    kind: ClassVar[str] = ""

    def build(self, **context: Any) -> Any:  # pragma: no cover - abstract by convention
        raise NotImplementedError(f"{type(self).__name__}.build is not implemented")

    @classmethod
    def type_key(cls) -> str:
        """The registry key: the default of the ``type`` literal."""
        field = cls.model_fields.get("type")
        if field is None or not isinstance(field.default, str) or not field.default:
            raise TypeError(
                f"{cls.__qualname__} must declare `type: Literal['<name>'] = '<name>'` to be registered"
            )
        return field.default
