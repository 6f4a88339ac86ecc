"""Where a subtask happens: the world's per-frame subtask point, its grid words in subtask text and
the pointing VQA questions (the recipes' ``subtask_points`` / ``points``)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vlakit.components.text.points import point_words, pointed_subtask
from vlakit.data.errors import DatasetError
from vlakit.data.sources.tabletop import POINT_KEY, TabletopEpisodesConfig, TabletopSubtasksConfig
from vlakit.envs.tabletop import TabletopConfig, TabletopEnv
from vlakit.envs.tabletop.tasks import push_start
from vlakit.registry import TEXT_TOKENIZERS

NONE2 = [-1.0, -1.0]


def test_point_words_bins_the_unit_table_and_clamps_the_edges():
    assert point_words([0.0, 0.0], 10) == "0 0"
    assert point_words([0.349, 0.95], 10) == "3 9"
    assert point_words([1.0, 1.2], 10) == "9 9"  # the far edge (and beyond) is the last cell
    assert point_words([-0.1, 0.5], 4) == "0 2"
    with pytest.raises(ValueError, match="bins"):
        point_words([0.5, 0.5], 1)


def test_pointed_subtask_names_the_object_and_or_the_zone():
    assert pointed_subtask("move to the red cube", [0.31, 0.52, *NONE2], 10) == "move to the red cube at 3 5"
    assert pointed_subtask("place the red cube in the blue zone", [*NONE2, 0.7, 0.25], 10) == \
        "place the red cube in the blue zone to 7 2"
    assert pointed_subtask("push the red cube into the blue zone", [0.31, 0.52, 0.7, 0.25], 10) == \
        "push the red cube into the blue zone at 3 5 to 7 2"


def _rollout_points(family: str, seed: int):
    env = TabletopEnv(TabletopConfig(families=(family,)))
    obs = env.reset(seed=seed)
    rows = []
    for _ in range(env.max_episode_steps):
        rows.append((obs.info["subtask"], obs.info["subtask_point"], env.world.positions.copy(), env.world.held))
        obs, _r, term, trunc, info = env.step(env.expert_action())
        if term or trunc:
            break
    assert info["success"]
    return env, rows


@pytest.mark.parametrize("family", ["reach", "push", "pick_place"])
def test_subtask_point_is_the_named_objects_position_and_the_zone_centre(family):
    env, rows = _rollout_points(family, seed=3)
    task = env.task
    zone = np.asarray(task.scene.zones[task.zone].centre)
    kinds = set()
    for subtask, point, positions, held in rows:
        assert np.all((point >= 0) | (point == -1))
        has_obj, has_zone = point[0] >= 0, point[2] >= 0
        if subtask.startswith(("move to", "pick up")):
            kinds.add(subtask.split(" the ")[0])
            assert has_obj and not has_zone, subtask
        elif subtask.startswith(("move behind", "push")):  # behind: the side away from the zone
            kinds.add(subtask.split(" the ")[0])
            assert has_obj and has_zone
        else:
            assert subtask.startswith("place") and held == task.target
            kinds.add("place")
            assert not has_obj and has_zone
        if has_obj:  # the object the subtask names, where it is now (it moves while pushed)
            np.testing.assert_allclose(point[:2], positions[task.target], atol=1e-6)
        if has_zone:
            np.testing.assert_allclose(point[2:], zone, atol=1e-6)
    expected = {"reach": {"move to"}, "push": {"move behind", "push"}, "pick_place": {"pick up", "place"}}[family]
    assert kinds == expected


def test_sources_append_points_only_when_asked_and_match_the_dataset(tmp_path):
    plain = TabletopEpisodesConfig(episodes=3, families=("push",)).build(horizon=4, cache_dir=tmp_path)
    plain.prepare(progress=False)
    pointed = TabletopEpisodesConfig(episodes=3, families=("push",), subtask_points=10).build(horizon=4,
                                                                                            cache_dir=tmp_path)
    assert pointed.root == plain.root  # formatting only: one cached dataset
    points = pointed.ds.array(POINT_KEY)
    pattern = re.compile(r"^(.*?)(?: at (\d) (\d))?(?: to (\d) (\d))?$")
    for i in range(len(plain)):
        text, base = pointed[i]["target_text"], plain[i]["target_text"]
        m = pattern.match(text)
        assert m and m.group(1) == base
        obj = None if m.group(2) is None else [int(m.group(2)), int(m.group(3))]
        zone = None if m.group(4) is None else [int(m.group(4)), int(m.group(5))]
        want_obj = None if points[i, 0] < 0 else [int(v * 10) for v in points[i, :2]]
        want_zone = None if points[i, 2] < 0 else [int(v * 10) for v in points[i, 2:]]
        assert (obj, zone) == (want_obj, want_zone), text
    sub = TabletopSubtasksConfig(episodes=3, families=("push",), subtask_points=10).build(horizon=4,
                                                                                        cache_dir=tmp_path)
    sub.prepare(progress=False)
    assert " at " in sub[0]["target_text"]
    # subtask-only samples carry the point too (the policy's point query learns from them)
    np.testing.assert_array_equal(sub[0]["subtask_point"][:2], sub.ds.array(POINT_KEY)[0, :2])


def test_points_on_a_dataset_without_the_column_fail_naming_it(tmp_path):
    import shutil

    src = TabletopEpisodesConfig(episodes=2).build(horizon=4, cache_dir=tmp_path)
    src.prepare(progress=False)
    old = tmp_path / "old"
    shutil.copytree(src.root, old)
    import json

    info_path = old / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    del info["features"][POINT_KEY]  # a dataset written before subtask points existed
    info_path.write_text(json.dumps(info))
    pointed = TabletopEpisodesConfig(path=str(old), subtask_points=10).build(horizon=4, cache_dir=None)
    with pytest.raises(DatasetError, match=re.escape(POINT_KEY)):
        pointed[0]


def test_pointing_vqa_answers_the_named_objects_grid_point():
    from vlakit.envs.tabletop.embodiments import FreeGripper
    from vlakit.envs.tabletop.scene import sample_scene
    from vlakit.envs.tabletop.vqa import _ask

    for seed in range(20):
        rng = np.random.default_rng(seed)
        scene = sample_scene(rng, split="train", num_objects=3, zone_colours=2, with_bin=False)
        question, answer, xy = _ask("point", scene, FreeGripper().position, rng, points=10)
        name = question[len("where is the "):-len(" at?")]
        index = [o.name for o in scene.objects].index(name)
        assert answer == point_words(scene.positions[index], 10)
        np.testing.assert_array_equal(xy, scene.positions[index])
        question, answer, xy = _ask("point_zone", scene, FreeGripper().position, rng, points=10)
        zone = [z for z in scene.zones if z.name == question[len("where is "):-len(" at?")]]
        assert len(zone) == 1 and answer == point_words(zone[0].centre, 10)
        np.testing.assert_array_equal(xy, zone[0].centre)
        question, answer, xy = _ask("point_behind", scene, FreeGripper().position, rng, points=10)
        obj, zone_name = question[len("where is behind the "):-1].split(" to push it into ")
        index = [o.name for o in scene.objects].index(obj)
        centre = next(z.centre for z in scene.zones if z.name == zone_name)
        np.testing.assert_array_equal(xy, push_start(scene.positions, index, np.asarray(centre)))
        assert answer == point_words(xy, 10)


def test_pointing_samples_carry_where_the_answer_is_in_the_object_or_zone_slot():
    from vlakit.data.sources.vqa import TabletopVQAConfig

    source = TabletopVQAConfig(num_samples=40, points=10, questions=("point", "point_zone", "point_behind")).build()
    kinds = set()
    for i in range(40):
        sample = source[i]
        point = sample["subtask_point"]
        zone = " zone at?" in sample["prompt"]
        kinds.add((zone, "behind" in sample["prompt"]))
        known = point[2:] if zone else point[:2]
        assert np.isnan(point[:2] if zone else point[2:]).all() and np.isfinite(known).all()
        assert point_words(known, 10) == sample["target_text"]
    assert kinds == {(True, False), (False, False), (False, True)}
    mixed = TabletopVQAConfig(num_samples=40, points=10).build()  # only pointing samples carry a point
    for i in range(40):
        sample = mixed[i]
        assert ("subtask_point" in sample) == sample["prompt"].endswith(" at?")
    assert any("subtask_point" in mixed[i] for i in range(40))
    with pytest.raises(ValueError, match="point_zone"):
        TabletopVQAConfig(questions=("point_zone",))


def test_pointed_subtasks_are_whole_tokens_and_fit_the_recipe_budget():
    """Every grid number is one token of the shipped tokenizer (no byte pieces), and the longest
    pointed subtask plus EOS fits the tabletop recipe's training target length (no truncation)."""
    from vlakit.recipe.load import load_recipe

    tok = TEXT_TOKENIZERS.get("tabletop_bpe").Config().build()
    longest = "push the yellow triangle into the purple zone at 9 9 to 0 0"
    ids = tok.encode([longest])[0]
    pieces = [tok.id_to_token(i) for i in ids]
    assert pieces[-6:] == ["Ġat", "Ġ9", "Ġ9", "Ġto", "Ġ0", "Ġ0"]
    recipe = load_recipe("pi05_tabletop")
    assert len(ids) + 1 <= recipe.model.max_target_tokens
    # the point_behind question is whole words too (it is not in the corpus the tokenizer was fitted on)
    from vlakit.envs.tabletop.language import BEHIND_POINT_QUESTION

    behind = BEHIND_POINT_QUESTION.format(obj="yellow triangle", zone="the purple zone")
    pieces = [tok.id_to_token(i) for i in tok.encode([behind])[0]]
    assert len(pieces) == len(behind.replace("?", " ?").split()) and len(pieces) < recipe.model.max_token_len


def test_a_vqa_source_can_ask_only_pointing_questions():
    from vlakit.data.sources.vqa import TabletopVQAConfig

    source = TabletopVQAConfig(num_samples=30, points=10, questions=("point",)).build()
    for i in range(30):
        sample = source[i]
        assert sample["prompt"].startswith("where is the ") and sample["prompt"].endswith(" at?")
        assert len(sample["target_text"].split()) == 2 and all(w.isdigit() for w in sample["target_text"].split())
    mixed = TabletopVQAConfig(num_samples=30, points=10).build()
    assert any(not mixed[i]["prompt"].endswith(" at?") for i in range(30))
    with pytest.raises(ValueError, match="unknown VQA question type"):
        TabletopVQAConfig(questions=("pointing",))
    with pytest.raises(ValueError, match="points"):
        TabletopVQAConfig(questions=("point",))


def test_number_smoothing_makes_a_near_miss_cheaper_than_a_far_one_and_leaves_words_alone():
    import torch

    from vlakit.recipe.build import build_policy
    from vlakit.recipe.load import load_recipe

    plain = build_policy(load_recipe("pi05_tabletop_tiny"))
    smooth = build_policy(load_recipe("pi05_tabletop_tiny", ["model.number_smoothing=1.0"]))
    tok = smooth.text_tokenizer
    three, four, eight = (tok.encode([f"at {n}"])[0][-1] for n in (3, 4, 8))
    word = tok.encode(["at cube"])[0][-1]
    v = smooth.language.vocab_size
    near, far = torch.full((1, v), -5.0), torch.full((1, v), -5.0)
    near[0, four], far[0, eight] = 5.0, 5.0  # confident in 4 or in 8 where the label is 3
    label = torch.tensor([three])
    assert smooth._text_ce(near, label) < smooth._text_ce(far, label)
    assert plain._text_ce(near, label) == pytest.approx(float(plain._text_ce(far, label)))  # plain CE: both wrong
    scores = torch.randn(3, v)
    labels = torch.tensor([word, three, word])
    a, b = smooth._text_ce(scores, labels), plain._text_ce(scores, labels)
    assert a[0] == pytest.approx(float(b[0])) and a[2] == pytest.approx(float(b[2]))
    assert a[1] != pytest.approx(float(b[1]))
