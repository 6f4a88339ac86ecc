"""Training: Lightning lives only in this package.

- :func:`train_recipe` -- the ``vlakit train`` job: data, norm stats, tokenizer, stages, policy folder.
- :func:`~vlakit.training.stages.run_stages` -- the staged Lightning loop (resumable).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainResult", "train_recipe"]


def __getattr__(name: str) -> Any:  # keep `import vlakit.training` light
    if name in __all__:
        from vlakit.training import run

        return getattr(run, name)
    raise AttributeError(name)
