"""LeRobot v3 datasets: vlakit's writer round-trips through the reader; a dataset laid out with
LeRobot's own conventions (HF-style parquet, pandas tasks index, mp4 video) reads correctly; bad
datasets fail with errors naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlakit.data.errors import DatasetError
from vlakit.data.generate import generate_tabletop_dataset, is_complete
from vlakit.data.lerobot_reader import LeRobotDataset
from vlakit.data.png import encode_png
from vlakit.envs.tabletop import TabletopConfig, TabletopEnv


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "ds"
    return generate_tabletop_dataset(out, episodes=6, families=("reach", "pick_place"), progress=False)


def test_generated_dataset_round_trips(generated: Path):
    ds = LeRobotDataset(generated)
    info = json.loads((generated / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == ds.num_episodes == 6
    assert info["total_frames"] == len(ds) and ds.robot_type == "tabletop_gripper"
    for rel in ("meta/stats.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet",
                "data/chunk-000/file-000.parquet"):
        assert (generated / rel).is_file(), rel
    stats = json.loads((generated / "meta/stats.json").read_text())
    for key in ("mean", "std", "min", "max", "count", "q01", "q99"):
        assert key in stats["action"]
    # replay episode 0 in the env: same first frame, state and task as stored
    env = TabletopEnv(TabletopConfig(families=("reach", "pick_place")))
    seed = ds.episodes[0]["tabletop/seed"]
    obs = env.reset(seed=seed)
    np.testing.assert_array_equal(ds.image("observation.images.overhead", 0), obs.images["overhead"])
    np.testing.assert_array_equal(ds.image("observation.images.wrist", 0), obs.images["wrist"])
    np.testing.assert_allclose(ds.array("observation.state")[0], obs.state)
    np.testing.assert_allclose(ds.array("action")[0], env.expert_action(), atol=1e-6)
    assert ds.task(0) == obs.prompt and ds.strings("subtask")[0] == obs.info["subtask"]
    assert ds.episodes[0]["tasks"] == [obs.prompt]


def test_grip_flips_record_recoveries_from_jaws_closed_on_nothing():
    """With ``grip_flips`` the executed jaws sometimes close off target; the recorded (clean) action
    there opens them again. Without flips the pick-and-place expert never closes on nothing."""
    from vlakit.data.generate import _run_episode, generation_args

    env = TabletopEnv(TabletopConfig(families=("pick_place",)))

    def closed_on_nothing(flips: float) -> list[float]:
        grips = []
        for seed in range(12):
            ep = _run_episode(env, seed=seed, noise=0.1, attempt=0, grip_flips=flips)
            if ep is not None:  # a failed attempt would be retried
                state, action = ep["state"], ep["action"]
                grips += action[(state[:, 2] <= 0.5) & (state[:, 3] < 0.5), -1].tolist()
        return grips

    assert closed_on_nothing(0.0) == []
    flipped = closed_on_nothing(0.2)
    assert flipped and all(g < 0 for g in flipped)  # the expert opens the jaws
    # flips name a different dataset; no flips keep the name datasets had before the option
    plain = generation_args(episodes=3, split="train", embodiment="gripper", families=["reach"], seed=0,
                            noise=0.1, image_size=64)
    assert "grip_flips" not in plain
    assert generation_args(**{**{k: v for k, v in plain.items() if k != "generator"}, "grip_flips": 0.1}) != plain


def test_early_closes_shut_the_jaws_before_the_expert_would_and_record_the_recovery():
    """With ``early_closes`` the executed jaws close 1-4 steps before the clean expert first closes them
    (on nothing, or on the object passed over); the recorded labels then open them again (unless the close
    landed on the push line), and the push still succeeds."""
    from vlakit.data.generate import _run_episode, first_close_step, generation_args

    env = TabletopEnv(TabletopConfig(families=("push",)))
    recoveries = reopened = 0
    for seed in range(8):
        env.reset(seed=seed)
        first = first_close_step(env.fork())
        assert first is not None and first >= 1  # the push expert closes behind the object, never at once
        clean = _run_episode(env, seed=seed, noise=0.0, attempt=0)
        assert clean is not None and clean["action"][first, -1] > 0 > clean["action"][first - 1, -1]
        ep = _run_episode(env, seed=seed, noise=0.1, attempt=0, early_closes=1.0)
        assert ep is not None  # the expert recovers and pushes
        state, action = ep["state"], ep["action"]
        closed = np.nonzero(state[:, 2] <= 0.5)[0]
        early = int(closed[0]) - 1  # the step whose executed action closed the jaws
        assert first - 4 <= early <= first - 1 and action[early, -1] < 0  # the label there said open
        opening = int(np.sum((state[:, 2] <= 0.5) & (action[:, -1] < 0)))
        recoveries += opening
        reopened += opening >= 1
    assert recoveries >= 8
    # a close that lands within PUSH_ACROSS of the push line just pushes; most land off it and reopen
    assert reopened >= 4
    plain = generation_args(episodes=3, split="train", embodiment="gripper", families=["push"], seed=0,
                            noise=0.1, image_size=64)
    assert "early_closes" not in plain
    assert generation_args(**{**{k: v for k, v in plain.items() if k != "generator"}, "early_closes": 0.5}) != plain


def test_action_chunk_clamps_and_pads_at_episode_end(generated: Path):
    ds = LeRobotDataset(generated)
    first, last = ds.episode_bounds(0)
    acts = ds.array("action")
    chunk, pad = ds.chunk("action", last - 1, 4)
    np.testing.assert_array_equal(pad, [False, False, True, True])
    np.testing.assert_array_equal(chunk[:2], acts[last - 1:last + 1])
    np.testing.assert_array_equal(chunk[2], acts[last])  # clamped to the last frame
    chunk, pad = ds.chunk("action", first, 2)
    assert not pad.any()


def test_generation_is_atomic_resumable_and_a_noop_when_complete(tmp_path: Path, monkeypatch):
    import vlakit.data.generate as gen

    ref = generate_tabletop_dataset(tmp_path / "ref", episodes=3, families=("reach",), progress=False)
    out = tmp_path / "ds"

    def killed(*a, **k):
        raise KeyboardInterrupt  # the run dies while assembling
    monkeypatch.setattr(gen, "_assemble", killed)
    with pytest.raises(KeyboardInterrupt):
        generate_tabletop_dataset(out, episodes=3, families=("reach",), progress=False)
    assert not out.exists() and not is_complete(out)  # nothing that looks like a dataset
    assert len(list((tmp_path / ".ds.partial/episodes").glob("*.npz"))) == 3
    monkeypatch.undo()

    calls = []
    real = gen._run_episode
    monkeypatch.setattr(gen, "_run_episode", lambda *a, **k: calls.append(1) or real(*a, **k))
    generate_tabletop_dataset(out, episodes=3, families=("reach",), progress=False)
    assert calls == []  # resumed from the finished episode shards
    assert not (tmp_path / ".ds.partial").exists()
    for rel in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet"):
        assert pq.read_table(out / rel).equals(pq.read_table(ref / rel)), rel
    mtime = (out / "meta/info.json").stat().st_mtime_ns
    generate_tabletop_dataset(out, episodes=3, families=("reach",), progress=False)
    assert (out / "meta/info.json").stat().st_mtime_ns == mtime and calls == []  # no-op
    with pytest.raises(DatasetError, match="already exists"):
        generate_tabletop_dataset(out, episodes=4, families=("reach",), progress=False)


def test_a_damaged_episode_shard_is_named_removed_and_made_again(tmp_path: Path, monkeypatch):
    """Shards are written without fsync (scratch files): one damaged by a power loss fails the
    assembly with its path, is removed, and the next run makes only that episode again."""
    import vlakit.data.generate as gen

    ref = generate_tabletop_dataset(tmp_path / "ref", episodes=3, families=("reach",), progress=False)
    out = tmp_path / "ds"
    monkeypatch.setattr(gen, "_assemble", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        generate_tabletop_dataset(out, episodes=3, families=("reach",), progress=False)
    monkeypatch.undo()
    shard = tmp_path / ".ds.partial/episodes/000001.npz"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated, as after a power loss
    with pytest.raises(DatasetError, match=r"episode shard .*000001\.npz is damaged"):
        generate_tabletop_dataset(out, episodes=3, families=("reach",), progress=False)
    assert not shard.exists() and not is_complete(out)
    calls = []
    real = gen._run_episode
    monkeypatch.setattr(gen, "_run_episode", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k))
    generate_tabletop_dataset(out, episodes=3, families=("reach",), progress=False)
    assert len(calls) == 1  # only the removed episode
    for rel in ("data/chunk-000/file-000.parquet", "meta/stats.json"):
        assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel


def test_partial_generation_of_an_older_shard_format_starts_afresh(tmp_path: Path):
    import json

    import vlakit.data.generate as gen

    work = tmp_path / ".ds.partial"
    (work / "episodes").mkdir(parents=True)
    args = gen.generation_args(episodes=2, split="train", embodiment="gripper", families=("reach",), seed=0,
                               noise=0.1, image_size=64, grip_flips=0.0, early_closes=0.0)
    (work / "args.json").write_text(json.dumps(args))  # format 1: args alone, shards of raw frames
    (work / "episodes" / "000000.npz").write_bytes(b"raw frames of the old format")
    out = generate_tabletop_dataset(tmp_path / "ds", episodes=2, families=("reach",), progress=False)
    assert is_complete(out) and not work.exists()


def test_worker_processes_write_the_same_dataset(tmp_path: Path, monkeypatch):
    """Episodes made and encoded by a pool of two spawned processes give a byte-identical dataset."""
    import vlakit.data.generate as gen

    monkeypatch.setattr(gen, "_EPISODES_PER_WORKER", 2)  # a pool even for 5 episodes
    assert gen._pool_size(2, 5) == 2 and gen._pool_size(2, 3) == 1 and gen._pool_size(None, 0) == 1
    one = generate_tabletop_dataset(tmp_path / "one", episodes=5, families=("reach", "push"), progress=False, workers=1)
    two = generate_tabletop_dataset(tmp_path / "two", episodes=5, families=("reach", "push"), progress=False, workers=2)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    with pytest.raises(DatasetError, match="--workers must be >= 1"):
        generate_tabletop_dataset(tmp_path / "bad", episodes=2, progress=False, workers=0)


def test_image_stats_match_the_float_formulas():
    from vlakit.data.lerobot_format import image_stats

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (7, 9, 11, 3), dtype=np.uint8)
    images[..., 1] = np.clip(images[..., 1], 17, 201)  # a channel that spans only part of the range
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    stats = image_stats(images)
    for key, ref in {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0)}.items():
        assert stats[key].shape == (3, 1, 1)
        np.testing.assert_allclose(stats[key].reshape(-1), ref, rtol=1e-9, atol=1e-12, err_msg=key)
    assert int(stats["count"][0]) == 7


def _generate_into(out: str, start) -> str:
    start.wait()
    return str(generate_tabletop_dataset(Path(out), episodes=4, families=("reach",), progress=False))


def test_concurrent_runs_sharing_a_cache_build_each_dataset_once(tmp_path: Path):
    """Two processes asking for the same dataset at once: one builds it, the other waits and reuses it."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = tmp_path / "cache" / "ds"
    with ctx.Manager() as manager:
        start = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            results = [pool.apply_async(_generate_into, (str(out), start)) for _ in range(2)]
            paths = [r.get(timeout=120) for r in results]
    assert paths == [str(out)] * 2
    assert is_complete(out)
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 4
    assert not (tmp_path / "cache" / ".ds.partial").exists()


def _lerobot_style_dataset(root: Path, *, with_video: bool) -> dict:
    """A dataset laid out as LeRobot v0.6 writes it (schema from lerobot-interop.md section 3)."""
    rng = np.random.default_rng(0)
    lengths = [5, 3]
    n = sum(lengths)
    state = rng.normal(size=(n, 2)).astype(np.float32)
    action = rng.normal(size=(n, 3)).astype(np.float32)
    img = np.zeros((n, 8, 10, 3), np.uint8)
    img[..., 0] = (np.arange(n) * 20)[:, None, None]
    ep = np.repeat(np.arange(2), lengths)
    frame = np.concatenate([np.arange(k) for k in lengths])
    features = {
        "observation.images.top": {"dtype": "image", "shape": [8, 10, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
        "action": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    cols = {
        "observation.images.top": pa.array([{"bytes": encode_png(i), "path": f"frame_{k:06d}.png"}
                                            for k, i in enumerate(img)]),
        "observation.state": pa.array(state.tolist(), type=pa.list_(pa.float32())),
        "action": pa.array(action.tolist(), type=pa.list_(pa.float32())),
        "timestamp": pa.array((frame / 10).astype(np.float32)),
        "frame_index": pa.array(frame), "episode_index": pa.array(ep), "index": pa.array(np.arange(n)),
        "task_index": pa.array(ep),
    }
    hf = {"info": {"features": {"observation.images.top": {"_type": "Image"},
                                "observation.state": {"feature": {"dtype": "float32", "_type": "Value"},
                                                      "_type": "List"}}}}
    ep_cols = {"episode_index": [0, 1], "tasks": [["pick the cup"], ["open the drawer"]], "length": lengths,
               "data/chunk_index": [0, 0], "data/file_index": [0, 0], "dataset_from_index": [0, 5],
               "dataset_to_index": [5, 8], "stats/action/mean": [[0.0] * 3, [0.0] * 3]}
    video = None
    if with_video:
        import av

        features["observation.images.cam"] = {"dtype": "video", "shape": [16, 16, 3],
                                              "names": ["height", "width", "channels"],
                                              "info": {"video.fps": 10, "video.codec": "mpeg4"}}
        video = np.zeros((n, 16, 16, 3), np.uint8)
        video[..., 1] = (np.arange(n) * 25 + 20)[:, None, None]
        path = root / "videos/observation.images.cam/chunk-000/file-000.mp4"
        path.parent.mkdir(parents=True)
        with av.open(str(path), "w") as c:
            s = c.add_stream("mpeg4", rate=10)
            s.width = s.height = 16
            s.pix_fmt = "yuv420p"
            s.options = {"qscale": "1"}
            for f in video:
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            c.mux(s.encode())
        ep_cols.update({"videos/observation.images.cam/chunk_index": [0, 0],
                        "videos/observation.images.cam/file_index": [0, 0],
                        "videos/observation.images.cam/from_timestamp": [0.0, 0.5],
                        "videos/observation.images.cam/to_timestamp": [0.5, 0.8]})
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    (root / "data/chunk-000").mkdir(parents=True)
    table = pa.table(cols).replace_schema_metadata({b"huggingface": json.dumps(hf).encode()})
    pq.write_table(table, root / "data/chunk-000/file-000.parquet")
    pq.write_table(pa.table(ep_cols), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0, 1], "__index_level_0__": ["pick the cup", "open the drawer"]}),
                   root / "meta/tasks.parquet")
    info = {"codebase_version": "v3.0", "fps": 10, "features": features, "total_episodes": 2, "total_frames": n,
            "total_tasks": 2, "chunks_size": 1000, "robot_type": None, "splits": {"train": "0:2"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"}
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/stats.json").write_text(json.dumps({"action": {"mean": [0, 0, 0], "q01": [-1, -1, -1]}}))
    return {"state": state, "action": action, "img": img, "video": video, "lengths": lengths}


def test_reads_dataset_written_with_lerobot_conventions(tmp_path: Path):
    ref = _lerobot_style_dataset(tmp_path, with_video=True)
    ds = LeRobotDataset(tmp_path)
    assert len(ds) == 8 and ds.num_episodes == 2
    assert ds.tasks == {0: "pick the cup", 1: "open the drawer"}
    assert ds.task(6) == "open the drawer"
    np.testing.assert_array_equal(ds.array("observation.state"), ref["state"])
    np.testing.assert_array_equal(ds.image("observation.images.top", 3), ref["img"][3])
    chunk, pad = ds.chunk("action", 3, 4)
    np.testing.assert_array_equal(pad, [False, False, True, True])
    np.testing.assert_array_equal(chunk[3], ref["action"][4])
    for row in (0, 4, 5, 7):  # video frames of both episodes (episode 1 starts 0.5 s into the file)
        frame = ds.image("observation.images.cam", row)
        assert frame.shape == (16, 16, 3)
        assert abs(float(frame[..., 1].mean()) - float(ref["video"][row, ..., 1].mean())) < 8


def test_bad_datasets_fail_naming_file_and_field(tmp_path: Path):
    root = tmp_path / "a"
    _lerobot_style_dataset(root, with_video=False)
    (root / "meta/tasks.parquet").unlink()
    with pytest.raises(DatasetError, match="missing file meta/tasks.parquet"):
        LeRobotDataset(root)

    root = tmp_path / "b"
    _lerobot_style_dataset(root, with_video=False)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["observation.state"]["shape"] = [5]
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"'observation.state' has 2 values .* declares shape \[5\]"):
        LeRobotDataset(root)

    root = tmp_path / "c"
    _lerobot_style_dataset(root, with_video=False)
    (root / "meta/stats.json").write_text('{"action": {"mean": [0, NaN, 0]}}')
    with pytest.raises(DatasetError, match=r"stats.json: field action.mean has non-finite"):
        LeRobotDataset(root)

    root = tmp_path / "d"
    _lerobot_style_dataset(root, with_video=False)
    ds = LeRobotDataset(root)
    with pytest.raises(DatasetError, match="no feature 'observation.images.wrist', which recipe source"):
        ds.require("observation.images.wrist", by="recipe source 'robot'")

    root = tmp_path / "e"
    _lerobot_style_dataset(root, with_video=False)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"file-000.parquet: feature 'next.reward' declared in meta/info.json"):
        LeRobotDataset(root)

    root = tmp_path / "f"
    _lerobot_style_dataset(root, with_video=True)
    (root / "videos/observation.images.cam/chunk-000/file-000.mp4").unlink()
    ds = LeRobotDataset(root)
    with pytest.raises(DatasetError, match="missing file videos/observation.images.cam/chunk-000/file-000.mp4"):
        ds.image("observation.images.cam", 0)

    with pytest.raises(DatasetError, match="does not exist"):
        LeRobotDataset(tmp_path / "nowhere")
