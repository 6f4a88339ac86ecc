"""The training corpus of the shipped text tokenizer.

Built from the tabletop world's own language (:func:`vlakit.envs.tabletop.language.corpus`: every
instruction, subtask, VQA question and answer it can produce) plus the prompt formats the policy
writes around it: π0.5 ``"Task: {task}, State: {bins};\\nAction: "`` with bins 0..255, π0
``"{task}\\n"``, and FAST's ``"Action: ... |"`` delimiter. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

#: every state bin appears this many times with a leading space, so each becomes one token
_NUMBER_REPEATS = 24


def world_sentences() -> list[str]:
    """The tabletop world's language, sorted (instructions, subtasks, questions, answers)."""
    from vlakit.envs.tabletop.language import corpus

    return corpus()


def tabletop_corpus(*, seed: int = 0, prompts: int = 6000) -> list[str]:
    """World sentences + ``prompts`` formatted prompts with random state bins + number coverage."""
    rng = np.random.default_rng(seed)
    world = world_sentences()
    lines = world * 2  # twice, so even a word used in one sentence reaches min_frequency 2
    tasks = rng.choice(len(world), size=prompts)
    dims = rng.integers(2, 9, size=prompts)
    for task_idx, d in zip(tasks.tolist(), dims.tolist()):
        bins = " ".join(str(b) for b in rng.integers(0, 256, size=d).tolist())
        lines.append(f"Task: {world[task_idx]}, State: {bins};\nAction: ")
    lines.extend(f"{world[i]}\n" for i in rng.choice(len(world), size=prompts // 4).tolist())
    lines.extend(f"Action: |{' ' * (i % 2)}" for i in range(64))
    numbers = np.tile(np.arange(256), _NUMBER_REPEATS)
    rng.shuffle(numbers)
    lines.extend("State: " + " ".join(map(str, row)) + ";" for row in numbers.reshape(-1, 16).tolist())
    return lines
