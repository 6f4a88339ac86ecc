"""LeRobot v3 action-chunk reader and the `vlakit tokenizer fit/report` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.unit._tokenizer_data import smooth_chunks
from vlakit.cli.main import app
from vlakit.components.action_tokenizers import FastActionTokenizer, load_action_tokenizer
from vlakit.components.action_tokenizers.dataset_chunks import load_action_chunks
from vlakit.interfaces.action_tokenizer import ActionTokenizerError

D = 4


def write_dataset(root: Path, episodes: list[np.ndarray], *, files: int = 2, shuffle: bool = True,
                  stats: dict | None = None) -> Path:
    """A minimal LeRobot v3 dataset (vlakit's writer helpers): info/stats/tasks/episodes metadata and
    `files` data parquet files, rows shuffled across files when `shuffle` (the reader orders by
    `index`)."""
    from vlakit.data.lerobot_format import (
        DEFAULT_FEATURES,
        EPISODES_PATH,
        TASKS_PATH,
        arrow_column,
        feature_stats,
        jsonable,
        write_table,
        write_tasks,
    )

    (root / "meta").mkdir(parents=True)
    x = np.concatenate(episodes)
    features = {"action": {"dtype": "float32", "shape": [D], "names": None}, **DEFAULT_FEATURES}
    info = {"codebase_version": "v3.0", "fps": 10, "total_episodes": len(episodes), "total_frames": len(x),
            "features": features}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    stats = stats if stats is not None else jsonable({"action": feature_stats(x)})
    (root / "meta" / "stats.json").write_text(json.dumps(stats))
    write_tasks(root / TASKS_PATH, ["move"])
    lengths = [len(e) for e in episodes]
    write_table(root / EPISODES_PATH.format(chunk_index=0, file_index=0),
                {"episode_index": pa.array(np.arange(len(episodes))), "length": pa.array(lengths),
                 "tasks": pa.array([["move"]] * len(episodes))}, {})
    columns = {"action": x.astype(np.float32),
               "episode_index": np.concatenate([np.full(n, i) for i, n in enumerate(lengths)]),
               "frame_index": np.concatenate([np.arange(n) for n in lengths]),
               "index": np.arange(len(x)), "task_index": np.zeros(len(x), np.int64),
               "timestamp": np.concatenate([np.arange(n) / 10 for n in lengths]).astype(np.float32)}
    order = np.random.default_rng(0).permutation(len(x)) if shuffle else np.arange(len(x))
    for k, part in enumerate(np.array_split(order, files)):
        write_table(root / "data" / "chunk-000" / f"file-{k:03d}.parquet",
                    {name: arrow_column(features[name], values[part]) for name, values in columns.items()},
                    features)
    return root


@pytest.fixture(scope="module")
def episodes() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [(smooth_chunks(1, horizon=n, action_dim=D, seed=i)[0] * 3 + rng.normal(size=D)).astype(np.float32)
            for i, n in enumerate([30, 45, 12, 60, 33, 50, 41, 27])]


def test_chunks_are_normalised_and_clamped_at_episode_end(tmp_path, episodes):
    root = write_dataset(tmp_path / "ds", episodes)
    got = load_action_chunks(root, horizon=8)
    x = np.concatenate(episodes).astype(np.float64)
    q01, q99 = np.quantile(x, 0.01, axis=0), np.quantile(x, 0.99, axis=0)
    # the training pipeline's quantile normalisation: exact q01/q99 of the column, clipped to [-1, 1]
    norm = [np.clip((e - q01) / (q99 - q01) * 2 - 1, -1, 1) for e in episodes]
    assert got.chunks.shape == (len(x), 8, D) and got.num_episodes == len(episodes)
    assert got.num_frames == len(x) and got.clipped == int((np.abs((x - q01) / (q99 - q01) * 2 - 1) > 1).sum()) > 0
    np.testing.assert_allclose(got.chunks[0], norm[0][:8], atol=1e-5)
    last = got.chunks[len(episodes[0]) - 3]  # starts 3 frames before the end of episode 0
    np.testing.assert_allclose(last[:3], norm[0][-3:], atol=1e-5)
    np.testing.assert_allclose(last[3:], np.repeat(norm[0][-1:], 5, axis=0), atol=1e-5)
    np.testing.assert_allclose(got.chunks[len(episodes[0])], norm[1][:8], atol=1e-5)


def test_stride_and_max_chunks(tmp_path, episodes):
    root = write_dataset(tmp_path / "ds", episodes)
    strided = load_action_chunks(root, horizon=5, stride=10)
    assert len(strided.chunks) == sum((len(e) + 9) // 10 for e in episodes)
    assert len(load_action_chunks(root, horizon=5, max_chunks=17).chunks) == 17


def test_stats_come_from_the_data_like_training(tmp_path, episodes):
    from vlakit.data.normalize import FeatureStats, normalize

    full = load_action_chunks(write_dataset(tmp_path / "a", episodes), horizon=5)
    # meta/stats.json is not used: without quantiles (or wrong ones) the chunks are the same
    bare = load_action_chunks(write_dataset(tmp_path / "b", episodes, stats={"action": {"mean": [0] * D}}),
                              horizon=5)
    np.testing.assert_array_equal(full.chunks, bare.chunks)
    x = np.concatenate(episodes)
    expected, _ = normalize(x, FeatureStats.from_array(x, where="test"), "quantile")
    np.testing.assert_array_equal(full.chunks[:, 0], expected)


def test_bad_values_and_missing_columns_are_named(tmp_path, episodes):
    broken = [e.copy() for e in episodes]
    broken[2][4, 1] = np.nan
    with pytest.raises(ActionTokenizerError, match=r"column 'action': non-finite value at frame 79, dim 1"):
        load_action_chunks(write_dataset(tmp_path / "a", broken, stats={}), horizon=5)
    root = write_dataset(tmp_path / "b", episodes)
    with pytest.raises(ActionTokenizerError, match=r"info.json: no feature 'observation.state'"):
        load_action_chunks(root, horizon=5, key="observation.state")
    with pytest.raises(ActionTokenizerError, match="does not exist"):
        load_action_chunks(tmp_path / "nowhere", horizon=5)


def test_cli_fit_then_report(tmp_path, episodes):
    a = write_dataset(tmp_path / "set_a", episodes)
    b = write_dataset(tmp_path / "set_b", episodes[::-1], files=1)
    runner = CliRunner()
    out = tmp_path / "tok"
    res = runner.invoke(app, ["tokenizer", "fit", "--data", str(a), "--out", str(out), "--horizon", "10",
                              "--vocab-size", "300"])
    assert res.exit_code == 0, res.output
    tok = load_action_tokenizer(out)
    assert isinstance(tok, FastActionTokenizer)
    assert (tok.config.horizon, tok.config.action_dim, tok.vocab_size) == (10, D, 300)
    res = runner.invoke(app, ["tokenizer", "report", str(out), "--data", str(a), "--data", str(b)])
    assert res.exit_code == 0, res.output
    for text in ("set_a", "set_b", "10x4=40", "compression", "RMSE"):
        assert text in res.output


def test_cli_reports_bad_dataset_as_one_error(tmp_path):
    res = CliRunner().invoke(app, ["tokenizer", "fit", "--data", str(tmp_path / "missing"), "--out",
                                   str(tmp_path / "tok")])
    assert res.exit_code == 2
    assert "does not exist" in " ".join(res.output.split()) and not (tmp_path / "tok").exists()
