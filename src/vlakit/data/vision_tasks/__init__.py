"""Built-in vision pre-training tasks (importing this package registers them)."""

from vlakit.data.vision_tasks import tabletop_scenes  # noqa: F401  (registration side effect)
