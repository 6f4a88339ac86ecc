"""Reader for LeRobotDataset v3.0 folders on local disk (no Hub), written by LeRobot or vlakit.

Everything except image/video pixels is loaded into memory at construction and validated there, so
a broken dataset fails before training starts with a :class:`DatasetError` naming file and field.
Action chunks follow LeRobot's ``delta_timestamps`` semantics: steps past the episode end repeat
the last frame and are flagged in ``is_pad``.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vlakit.data.errors import DatasetError
from vlakit.data.lerobot_format import (
    EPISODES_DIR,
    IMAGE_PREFIX,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
)
from vlakit.data.png import decode_png


class LeRobotDataset:
    """Random access to frames, action chunks, tasks and episode metadata of one dataset folder.

    Attributes:
        root: the dataset folder.
        info: parsed ``meta/info.json``.
        features: feature schema ``{key: {dtype, shape, names}}``.
        camera_keys: image/video feature keys (``observation.images.<camera>``), schema order.
        tasks: ``task_index -> task string``.
        episodes: one dict per episode (``episode_index``, ``length``, ``tasks``, extra columns).
        stats: parsed ``meta/stats.json`` (or None when absent).
    """

    def __init__(self, root: str | Path, *, video_cache_episodes: int = 4, image_cache_mb: int = 512) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder {self.root} does not exist")
        self.info = self._load_info()
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.fps = float(self.info.get("fps") or 0) or None
        self.camera_keys = [k for k, f in self.features.items() if f.get("dtype") in ("image", "video")]
        self._load_data()
        self.tasks = self._load_tasks()
        self.episodes = self._load_episodes()
        self.stats = self._load_stats()
        self._video_cache: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._video_cache_size = video_cache_episodes
        # decoded image frames are kept (up to a byte budget): small datasets decode each PNG once
        self._image_cache: dict[tuple[str, int], np.ndarray] = {}
        self._image_cache_budget = int(image_cache_mb) * 1024 * 1024

    # -- loading & validation -------------------------------------------------------------------
    def _file(self, rel: str) -> Path:
        path = self.root / rel
        if not path.is_file():
            raise DatasetError(f"dataset {self.root}: missing file {rel}")
        return path

    def _load_info(self) -> dict[str, Any]:
        path = self._file(INFO_PATH)
        try:
            info = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from None
        version = str(info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise DatasetError(f"{path}: field 'codebase_version' is {version!r}; vlakit reads LeRobot v3.x "
                               "datasets (convert older ones with lerobot's convert_dataset_v21_to_v30)")
        if not isinstance(info.get("features"), dict) or not info["features"]:
            raise DatasetError(f"{path}: field 'features' is missing or empty")
        for key, ft in info["features"].items():
            if "dtype" not in ft or "shape" not in ft:
                raise DatasetError(f"{path}: feature {key!r} lacks 'dtype' or 'shape'")
        return info

    def _load_data(self) -> None:
        files = sorted((self.root / "data").glob("chunk-*/file-*.parquet"))
        if not files:
            raise DatasetError(f"dataset {self.root}: no data files (expected data/chunk-*/file-*.parquet)")
        tables = []
        for f in files:
            try:
                t = pq.read_table(f)
            except (OSError, pa.ArrowInvalid) as exc:
                raise DatasetError(f"{f}: cannot read parquet ({exc})") from None
            for key, ft in self.features.items():
                if ft["dtype"] != "video" and key not in t.column_names:
                    raise DatasetError(f"{f}: feature {key!r} declared in {INFO_PATH} is missing from the data")
            tables.append((f, t.select([k for k in t.column_names if k in self.features])))
        try:
            table = pa.concat_tables([t for _, t in tables], promote_options="permissive")
        except pa.ArrowInvalid as exc:
            raise DatasetError(f"dataset {self.root}: data files have incompatible schemas ({exc})") from None
        order = np.argsort(np.asarray(table.column("index")), kind="stable")
        table = table.take(pa.array(order))
        self._files = [f for f, _ in tables]
        self.num_frames = table.num_rows
        self._arrays: dict[str, np.ndarray] = {}
        self._strings: dict[str, list[str]] = {}
        self._images: dict[str, pa.Array] = {}
        for key, ft in self.features.items():
            if ft["dtype"] == "video":
                continue
            col = table.column(key).combine_chunks()
            if ft["dtype"] == "image":
                self._images[key] = col
            elif ft["dtype"] == "string":
                self._strings[key] = col.to_pylist()
            else:
                self._arrays[key] = self._numeric(key, ft, col)
        ep = self._arrays["episode_index"].reshape(-1)
        starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
        ends = np.r_[starts[1:], len(ep)] - 1
        if len(np.unique(ep)) != len(starts):
            raise DatasetError(f"dataset {self.root}: field 'episode_index' is not contiguous in 'index' order")
        seg = np.repeat(np.arange(len(starts)), ends - starts + 1)
        self._ep_start, self._ep_end = starts[seg], ends[seg]
        self._ep_ids = ep[starts]

    def _numeric(self, key: str, ft: dict[str, Any], col: pa.Array) -> np.ndarray:
        shape = [int(s) for s in ft["shape"]]
        size = int(np.prod(shape))
        if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
            lengths = np.asarray(col.value_lengths()) if not pa.types.is_fixed_size_list(col.type) \
                else np.full(len(col), col.type.list_size)
            bad = np.flatnonzero(lengths != size)
            if len(bad):
                raise DatasetError(f"dataset {self.root}: data feature {key!r} has {lengths[bad[0]]} values at "
                                   f"row {bad[0]}, but {INFO_PATH} declares shape {shape}")
            values = np.asarray(col.flatten().to_numpy(zero_copy_only=False))
            return values.reshape(len(col), size).astype(np.float32 if "float" in ft["dtype"] else np.int64)
        if size != 1:
            raise DatasetError(f"dataset {self.root}: feature {key!r} is a scalar column, but {INFO_PATH} "
                               f"declares shape {shape}")
        return np.asarray(col.to_numpy(zero_copy_only=False)).reshape(-1, 1)

    def _load_tasks(self) -> dict[int, str]:
        path = self.root / TASKS_PATH
        if not path.is_file():
            legacy = self.root / "meta/tasks.jsonl"
            if legacy.is_file():
                rows = [json.loads(line) for line in legacy.read_text().splitlines() if line.strip()]
                return {int(r["task_index"]): str(r["task"]) for r in rows}
            raise DatasetError(f"dataset {self.root}: missing file {TASKS_PATH}")
        t = pq.read_table(path)
        text_col = next((c for c in ("task", "__index_level_0__") if c in t.column_names), None)
        if "task_index" not in t.column_names or text_col is None:
            raise DatasetError(f"{path}: expected columns 'task_index' and 'task' (or a pandas index), "
                               f"found {t.column_names}")
        tasks = dict(zip(t.column("task_index").to_pylist(), t.column(text_col).to_pylist()))
        used = set(np.unique(self._arrays["task_index"]).tolist())
        missing = sorted(used - set(tasks))
        if missing:
            raise DatasetError(f"{path}: task_index {missing[:5]} used by the data has no task string")
        return {int(k): str(v) for k, v in tasks.items()}

    def _load_episodes(self) -> list[dict[str, Any]]:
        files = sorted((self.root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
        if not files:
            raise DatasetError(f"dataset {self.root}: missing episode metadata ({EPISODES_DIR}/chunk-*/file-*.parquet)")
        rows: list[dict[str, Any]] = []
        for f in files:
            t = pq.read_table(f)
            for col in ("episode_index", "length"):
                if col not in t.column_names:
                    raise DatasetError(f"{f}: missing column {col!r}")
            keep = [c for c in t.column_names if not c.startswith("stats/")]
            rows.extend(t.select(keep).to_pylist())
        rows.sort(key=lambda r: r["episode_index"])
        by_id = {r["episode_index"]: r for r in rows}
        lengths = np.bincount(np.searchsorted(self._ep_ids, self._arrays["episode_index"].reshape(-1)))
        for eid, n in zip(self._ep_ids.tolist(), lengths.tolist()):
            meta = by_id.get(eid)
            if meta is None:
                raise DatasetError(f"dataset {self.root}: episode {eid} has data but no row in {EPISODES_DIR}")
            if int(meta["length"]) != n:
                raise DatasetError(f"dataset {self.root}: {EPISODES_DIR} says episode {eid} has length "
                                   f"{meta['length']}, the data has {n} frames")
        return rows

    def _load_stats(self) -> dict[str, Any] | None:
        path = self.root / STATS_PATH
        if not path.is_file():
            return None
        stats = json.loads(path.read_text())
        for key, entry in stats.items():
            for name, value in entry.items():
                arr = np.asarray(value, dtype=np.float64)
                if not np.all(np.isfinite(arr)):
                    raise DatasetError(f"{path}: field {key}.{name} has non-finite values")
        return stats

    # -- access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_frames

    @property
    def num_episodes(self) -> int:
        return len(self._ep_ids)

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    def camera_name(self, key: str) -> str:
        return key.removeprefix(IMAGE_PREFIX)

    def has(self, key: str) -> bool:
        return key in self._arrays or key in self._strings or key in self._images or key in self.camera_keys

    def require(self, key: str, *, by: str) -> None:
        """Raise if the dataset lacks ``key`` (which ``by`` -- e.g. a recipe source -- needs)."""
        if not self.has(key):
            raise DatasetError(f"dataset {self.root} has no feature {key!r}, which {by} needs. Features: "
                               f"{', '.join(self.features)}")

    def array(self, key: str) -> np.ndarray:
        """Numeric feature over all frames, ``[N, D]``."""
        self.require(key, by="the reader")
        return self._arrays[key]

    def strings(self, key: str) -> list[str]:
        return self._strings[key]

    def task(self, row: int) -> str:
        return self.tasks[int(self._arrays["task_index"][row, 0])]

    def episode_bounds(self, row: int) -> tuple[int, int]:
        """First and last row of the episode that ``row`` belongs to."""
        return int(self._ep_start[row]), int(self._ep_end[row])

    def chunk(self, key: str, row: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values [H, D], is_pad bool [H])`` for rows ``row .. row+H-1`` of ``key``, clamped to the
        episode's last frame (LeRobot semantics)."""
        end = self._ep_end[row]
        idx = row + np.arange(horizon)
        is_pad = idx > end
        return self._arrays[key][np.minimum(idx, end)], is_pad

    def image(self, key: str, row: int) -> np.ndarray:
        """uint8 ``[h, w, 3]`` frame of camera feature ``key`` (read-only array; copy to modify)."""
        cached = self._image_cache.get((key, row))
        if cached is not None:
            return cached
        if key in self._images:
            cell = self._images[key][row].as_py()
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            if data is None and isinstance(cell, dict) and cell.get("path"):
                data = self._file(cell["path"]).read_bytes()
            if data is None:
                raise DatasetError(f"dataset {self.root}: image {key!r} at row {row} has neither bytes nor path")
            img = decode_png(data)
        elif key in self.camera_keys:
            img = self._video_frame(key, row)
        else:
            self.require(key, by="the reader")
            raise AssertionError
        shape = tuple(int(s) for s in self.features[key]["shape"])
        if img.shape != shape and img.shape != (shape[1], shape[2], shape[0]):
            raise DatasetError(f"dataset {self.root}: image {key!r} at row {row} has shape {img.shape}, "
                               f"{INFO_PATH} declares {list(shape)}")
        if self._image_cache_budget >= img.nbytes:
            img.setflags(write=False)
            self._image_cache[(key, row)] = img
            self._image_cache_budget -= img.nbytes
        return img

    def _video_frame(self, key: str, row: int) -> np.ndarray:
        eid = int(self._arrays["episode_index"][row, 0])
        cache_key = (key, eid)
        if cache_key not in self._video_cache:
            self._video_cache[cache_key] = self._decode_episode_video(key, eid)
            while len(self._video_cache) > self._video_cache_size:
                self._video_cache.popitem(last=False)
        times, frames = self._video_cache[cache_key]
        t = float(self._arrays["timestamp"][row, 0])
        i = int(np.argmin(np.abs(times - t)))
        tol = 0.5 / self.fps if self.fps else 1e-4
        if abs(times[i] - t) > tol + 1e-4:
            raise DatasetError(f"dataset {self.root}: no video frame of {key!r} near timestamp {t:.4f} "
                               f"(episode {eid}; nearest {times[i]:.4f})")
        return frames[i]

    def _decode_episode_video(self, key: str, eid: int) -> tuple[np.ndarray, np.ndarray]:
        import av

        meta = next(r for r in self.episodes if r["episode_index"] == eid)
        pre = f"videos/{key}/"
        chunk, file = meta.get(pre + "chunk_index", 0), meta.get(pre + "file_index", 0)
        start = float(meta.get(pre + "from_timestamp", 0.0) or 0.0)
        stop = float(meta.get(pre + "to_timestamp", math.inf) or math.inf)
        rel = self.info.get("video_path") or "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
        path = self._file(rel.format(video_key=key, chunk_index=int(chunk), file_index=int(file)))
        times, frames = [], []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if start > 0:
                container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                ts = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time)
                if ts < start - 1e-4:
                    continue
                if ts >= stop - 1e-4:
                    break
                times.append(ts - start)
                frames.append(frame.to_ndarray(format="rgb24"))
        if not frames:
            raise DatasetError(f"{path}: no frames for episode {eid} between {start:.3f}s and {stop:.3f}s")
        return np.asarray(times), np.stack(frames)
