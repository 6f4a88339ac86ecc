"""LeRobotDataset v3.0 layout: paths, feature schema, and the parquet writers vlakit uses.

Layout (LeRobot ``datasets/utils.py``)::

    meta/info.json  meta/stats.json  meta/tasks.parquet
    meta/episodes/chunk-000/file-000.parquet
    data/chunk-000/file-000.parquet            (many episodes per file)
    videos/<key>/chunk-000/file-000.mp4        (video features only)

Image features are stored in the data parquet as HF ``Image`` structs ``{bytes: PNG, path}``; this
is what vlakit writes (fastest to read at 64x64: no seeking, no codec). The reader also decodes
``video`` features with PyAV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
IMAGE_PREFIX = "observation.images."

#: columns every LeRobot dataset has (``utils/constants.py::DEFAULT_FEATURES``)
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def _hf_feature(ft: dict[str, Any]) -> dict[str, Any]:
    """HF ``datasets`` feature JSON for a LeRobot feature (stored in the parquet schema metadata)."""
    dtype = ft["dtype"]
    if dtype == "image":
        return {"_type": "Image"}
    shape = list(ft["shape"])
    if shape == [1]:
        return {"dtype": dtype, "_type": "Value"}
    return {"feature": {"dtype": dtype, "_type": "Value"}, "length": int(np.prod(shape)), "_type": "Sequence"}


def arrow_column(ft: dict[str, Any], values: Any) -> pa.Array:
    """Arrow array for one feature column (``values``: ndarray ``[N, ...]``, list of PNG bytes, ...)."""
    dtype = ft["dtype"]
    if dtype == "image":
        return pa.array([{"bytes": b, "path": None} for b in values],
                        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    if dtype == "string":
        return pa.array(list(values), type=pa.string())
    arr = np.asarray(values)
    if list(ft["shape"]) == [1]:
        return pa.array(arr.reshape(-1).astype(dtype))
    flat = pa.array(arr.reshape(len(arr), -1).reshape(-1).astype(dtype))
    return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(ft["shape"])))


def write_table(path: Path, columns: dict[str, pa.Array], features: dict[str, dict[str, Any]]) -> None:
    """Write a parquet file with HF-style ``huggingface`` schema metadata (as LeRobot does)."""
    table = pa.table(columns)
    hf = {"info": {"features": {k: _hf_feature(features[k]) for k in columns if k in features}}}
    table = table.replace_schema_metadata({b"huggingface": json.dumps(hf).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_tasks(path: Path, tasks: list[str]) -> None:
    """``meta/tasks.parquet`` as pandas writes it: index ``task`` (string), column ``task_index``."""
    table = pa.table({"task_index": pa.array(np.arange(len(tasks), dtype=np.int64)),
                      "task": pa.array(tasks, type=pa.string())})
    pandas_meta = {
        "index_columns": ["task"], "column_indexes": [], "pandas_version": "2.2.3", "creator": {"library": "pyarrow"},
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
    }
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def feature_stats(x: np.ndarray) -> dict[str, Any]:
    """LeRobot-style stats of ``x`` ``[N, D]``: min max mean std count q01 q10 q50 q90 q99 (exact)."""
    x = np.asarray(x, np.float64)
    qs = np.quantile(x, QUANTILES, axis=0)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    for q, v in zip(QUANTILES, qs):
        out[f"q{round(q * 100):02d}"] = v
    return out


def image_stats(images: np.ndarray) -> dict[str, Any]:
    """Per-channel stats of uint8 images ``[N, h, w, 3]`` in [0, 1], shaped ``[3, 1, 1]`` like LeRobot."""
    pixels = np.asarray(images, np.uint8).reshape(-1, 3)
    # exact, from per-channel histograms of the 256 levels (no float copy of every pixel)
    counts = np.stack([np.bincount(pixels[:, c], minlength=256) for c in range(3)]).astype(np.float64)
    levels = np.arange(256) / 255.0
    seen = counts > 0
    mean = counts @ levels / len(pixels)
    var = counts @ levels**2 / len(pixels) - mean**2
    out = {"min": np.array([levels[row].min() for row in seen]), "max": np.array([levels[row].max() for row in seen]),
           "mean": mean, "std": np.sqrt(np.maximum(var, 0.0))}
    out = {k: v.reshape(3, 1, 1) for k, v in out.items()}
    out["count"] = np.array([len(images)])
    return out


def jsonable(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}
