"""The tabletop world's language: instruction and subtask templates, VQA questions and answers.

Everything the world can say is generated from the templates here, so :func:`corpus` can list it
exhaustively (the shipped text tokenizer is trained on that list).
"""

from __future__ import annotations

import itertools

from vlakit.envs.tabletop.scene import COLOUR_NAMES, SHAPES

INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "reach": ("touch the {obj}", "reach the {obj}", "move the gripper to the {obj}"),
    "push": ("push the {obj} into {zone}", "slide the {obj} into {zone}"),
    "pick_place": ("put the {obj} in {zone}", "pick up the {obj} and place it in {zone}",
                   "place the {obj} in {zone}"),
    "tidy": ("put all the blocks in the bin", "tidy up the table: put every block in the bin",
             "clear the table by putting all the blocks in the bin"),
}

SUBTASKS: dict[str, str] = {
    "reach": "move to the {obj}",
    "approach": "move behind the {obj}",
    "push": "push the {obj} into {zone}",
    "pick": "pick up the {obj}",
    "place": "place the {obj} in {zone}",
}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
REGIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")

#: question templates of the VQA source -> the answer vocabulary they can produce
VQA_QUESTIONS: dict[str, str] = {
    "colour": "what colour is the {shape}?",
    "shape": "what shape is the {colour} object?",
    "count_all": "how many objects are on the table?",
    "count_colour": "how many {colour} objects are there?",
    "left_right": "is the {obj} left or right of the {obj2}?",
    "above_below": "is the {obj} above or below the {obj2}?",
    "zone": "which zone is the {obj} in?",
    "where": "where is the {obj}?",
    "what_at": "what is at the {region} of the table?",
    "closest": "which object is closest to the gripper?",
}
#: asked only by VQA sources with ``points`` set; the answer is a grid point
#: (:func:`vlakit.components.text.points.point_words`)
POINT_QUESTION = "where is the {obj} at?"
#: the same for a zone (question type ``point_zone``, asked only when listed in a source's ``questions``)
ZONE_POINT_QUESTION = "where is {zone} at?"
#: the spot behind an object where its push into a zone starts (question type ``point_behind``,
#: asked only when listed; :func:`vlakit.envs.tabletop.tasks.push_start`)
BEHIND_POINT_QUESTION = "where is behind the {obj} to push it into {zone}?"


def object_names() -> list[str]:
    return [f"{c} {s}" for c, s in itertools.product(COLOUR_NAMES, SHAPES)]


def zone_names() -> list[str]:
    return [f"the {c} zone" for c in COLOUR_NAMES] + ["the bin"]


def vqa_answers() -> list[str]:
    answers = list(COLOUR_NAMES) + list(SHAPES) + list(NUMBER_WORDS) + list(REGIONS)
    answers += ["left", "right", "above", "below", "none", "nothing"]
    answers += zone_names() + [f"the {o}" for o in object_names()]
    return answers


def corpus() -> list[str]:
    """Every distinct string the world produces (instructions, subtasks, VQA questions/answers),
    sorted. Deterministic; a few thousand lines. The optional grid points (``pointed_subtask``,
    ``POINT_QUESTION`` answers) are not enumerated: their words and numbers are whole tokens of the
    shipped tokenizer (tests/unit/test_subtask_points.py)."""
    objs, zones = object_names(), zone_names()
    out: set[str] = set()
    for templates in INSTRUCTIONS.values():
        for t in templates:
            if "{" not in t:
                out.add(t)
                continue
            for obj in objs:
                for zone in (zones if "{zone}" in t else [""]):
                    out.add(t.format(obj=obj, zone=zone))
    for t in SUBTASKS.values():
        for obj in objs:
            for zone in (zones if "{zone}" in t else [""]):
                out.add(t.format(obj=obj, zone=zone))
    for t in VQA_QUESTIONS.values():
        fills: list[dict[str, str]] = [{}]
        if "{shape}" in t:
            fills = [{"shape": s} for s in SHAPES]
        elif "{colour}" in t:
            fills = [{"colour": c} for c in COLOUR_NAMES]
        elif "{obj2}" in t:
            fills = [{"obj": a, "obj2": b} for a in objs for b in objs if a != b]
        elif "{obj}" in t:
            fills = [{"obj": a} for a in objs]
        elif "{region}" in t:
            fills = [{"region": r} for r in REGIONS]
        out.update(t.format(**f) for f in fills)
    out.update(vqa_answers())
    return sorted(out)
