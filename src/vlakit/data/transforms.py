"""Sample transforms: normalise, pad, resize -- and their inverse for actions at inference.

Training: :class:`SampleTransform` turns a source's raw sample dict into fixed-size arrays and
:func:`collate` stacks those into a :class:`~vlakit.types.Batch`. Inference:
:class:`ObservationTransform` applies the *same* steps to an env observation and maps predicted
actions back to the env's units (the pair of DESIGN.md section 7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vlakit.data.errors import DatasetError
from vlakit.data.normalize import ClipCounter, NormStats, normalize, unnormalize


def resize_with_pad(img: np.ndarray, size: int) -> np.ndarray:
    """Fit uint8 ``[h, w, 3]`` into ``[size, size, 3]`` keeping the aspect ratio, centred, zero padded
    (LeRobot ``resize_with_pad``). Returns ``img`` itself when it already has that size."""
    h, w = img.shape[:2]
    if h == size and w == size:
        return img
    from PIL import Image

    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out


def pad_last(x: np.ndarray, width: int, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the last axis of ``x`` to ``width``; returns ``(padded, mask [width])``."""
    d = x.shape[-1]
    if d > width:
        raise DatasetError(f"{what} has {d} dims, more than model.max_action_dim={width}; raise max_action_dim")
    out = np.zeros((*x.shape[:-1], width), np.float32)
    out[..., :d] = x
    mask = np.zeros(width, bool)
    mask[:d] = True
    return out, mask


class SampleTransform:
    """Raw source sample -> model-ready arrays (normalised, padded, resized, cameras ordered).

    Output dict: ``images`` {model camera: uint8 [s, s, 3]}, ``image_masks`` {camera: bool},
    ``state`` [A], ``state_mask`` [A], ``actions`` [H, A], ``action_is_pad`` [H],
    ``action_dim_mask`` [A], ``has_actions``, ``prompt``, ``target_text``, ``subtask_point`` (float32
    [P] with NaN where the subtask has no such point, or None), ``source``.
    """

    def __init__(self, *, source: str, cameras: Sequence[str], camera_map: dict[str, str], max_action_dim: int,
                 horizon: int, norm_stats: NormStats, image_size: int | None, clip_counter: ClipCounter) -> None:
        self.source = source
        self.cameras = list(cameras)
        self.camera_map = dict(camera_map)
        self.max_action_dim = max_action_dim
        self.horizon = horizon
        self.norm_stats = norm_stats
        self.image_size = image_size
        self.clip_counter = clip_counter

    def images(self, images: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
        out, masks = {}, {}
        size = self.image_size
        if size is None:
            present = [images[self.camera_map.get(c, c)] for c in self.cameras if self.camera_map.get(c, c) in images]
            if not present:
                raise DatasetError(f"data source {self.source!r}: none of its cameras {sorted(images)} matches "
                                   f"model.cameras {self.cameras}; set camera_map on the source")
            size = present[0].shape[0]
        for cam in self.cameras:
            img = images.get(self.camera_map.get(cam, cam))
            if img is None:
                out[cam], masks[cam] = np.zeros((size, size, 3), np.uint8), False
            else:
                out[cam], masks[cam] = resize_with_pad(img, size), True
        if not any(masks.values()):
            raise DatasetError(f"data source {self.source!r}: none of its cameras {sorted(images)} matches "
                               f"model.cameras {self.cameras}; set camera_map on the source")
        return out, masks

    def state(self, state: np.ndarray | None, robot_type: str | None) -> tuple[np.ndarray, np.ndarray]:
        if state is None:
            return np.zeros(self.max_action_dim, np.float32), np.zeros(self.max_action_dim, bool)
        if robot_type is None:
            raise DatasetError(f"data source {self.source!r} yields a state but no robot_type (stats key)")
        stats = self.norm_stats.get(robot_type, "state")
        y, n = normalize(state, stats, self.norm_stats.mode)
        self.clip_counter.add(f"{robot_type}/state", n, y.size)
        return pad_last(y, self.max_action_dim, what=f"state of {robot_type!r}")

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        images, image_masks = self.images(sample["images"])
        robot_type = sample.get("robot_type")
        state, state_mask = self.state(sample.get("state"), robot_type)
        H, A = self.horizon, self.max_action_dim
        raw = sample.get("actions")
        if raw is not None:
            stats = self.norm_stats.get(robot_type, "actions")
            y, n = normalize(raw, stats, self.norm_stats.mode)
            self.clip_counter.add(f"{robot_type}/actions", n, y.size)
            if y.shape[0] != H:
                raise DatasetError(f"data source {self.source!r}: action chunk of {y.shape[0]} steps, "
                                   f"model.horizon is {H}")
            actions, dim_mask = pad_last(y, A, what=f"actions of {robot_type!r}")
            is_pad = np.asarray(sample["action_is_pad"], bool)
        else:
            actions, dim_mask, is_pad = np.zeros((H, A), np.float32), np.zeros(A, bool), np.ones(H, bool)
        return {"images": images, "image_masks": image_masks, "state": state, "state_mask": state_mask,
                "actions": actions, "action_is_pad": is_pad, "action_dim_mask": dim_mask,
                "has_actions": raw is not None, "prompt": sample["prompt"], "target_text": sample.get("target_text"),
                "subtask_point": sample.get("subtask_point"), "source": self.source}


def collate(samples: list[dict[str, Any]]) -> Any:
    """Stack transformed samples into a :class:`~vlakit.types.Batch` (torch tensors)."""
    import torch

    from vlakit.types import Batch, Observation

    cams = list(samples[0]["images"])
    shapes = {s["images"][c].shape for s in samples for c in cams}
    if len(shapes) != 1:
        raise DatasetError(f"images of different sizes {sorted(shapes)} in one batch (sources "
                           f"{sorted({s['source'] for s in samples})}); set data.image_size to resize them")
    obs = Observation(
        images={c: torch.from_numpy(np.stack([s["images"][c] for s in samples])) for c in cams},
        image_masks={c: torch.tensor([s["image_masks"][c] for s in samples]) for c in cams},
        state=torch.from_numpy(np.stack([s["state"] for s in samples])),
        state_mask=torch.from_numpy(np.stack([s["state_mask"] for s in samples])),
        prompt=[s["prompt"] for s in samples],
    )
    return Batch(
        observation=obs,
        actions=torch.from_numpy(np.stack([s["actions"] for s in samples])),
        action_is_pad=torch.from_numpy(np.stack([s["action_is_pad"] for s in samples])),
        action_dim_mask=torch.from_numpy(np.stack([s["action_dim_mask"] for s in samples])),
        has_actions=torch.tensor([s["has_actions"] for s in samples]),
        target_text=[s["target_text"] for s in samples],
        source=[s["source"] for s in samples],
        subtask_point=_stack_points([s.get("subtask_point") for s in samples]),
    )


def _stack_points(points: list[Any]) -> Any:
    """``[B, P]`` float32 with NaN rows for samples without a point; None when no sample has one."""
    import torch

    present = [np.asarray(p, np.float32) for p in points if p is not None]
    if not present:
        return None
    width = {p.shape for p in present}
    if len(width) != 1:
        raise DatasetError(f"subtask points of different shapes {sorted(width)} in one batch")
    out = np.full((len(points), present[0].shape[0]), np.nan, np.float32)
    for i, p in enumerate(points):
        if p is not None:
            out[i] = p
    return torch.from_numpy(out)


class ObservationTransform:
    """Inference half of the pair: env observations in, batched :class:`~vlakit.types.Observation`
    out; normalised padded actions back to the robot's raw action units.

    Args:
        cameras: the recipe's ``model.cameras`` (order kept).
        max_action_dim: the recipe's ``model.max_action_dim``.
        norm_stats: the stats saved with the policy.
        robot_type: stats key of the env's embodiment (``env.robot_type``).
        camera_map: model camera -> env camera where names differ.
        image_size: resize target (None = keep the env's size).
    """

    def __init__(self, *, cameras: Sequence[str], max_action_dim: int, norm_stats: NormStats, robot_type: str,
                 camera_map: dict[str, str] | None = None, image_size: int | None = None) -> None:
        self.robot_type = robot_type
        self.norm_stats = norm_stats
        self.action_stats = norm_stats.get(robot_type, "actions")
        norm_stats.get(robot_type, "state")  # fail now, not at the first step
        self.clip_counter = ClipCounter()
        self._t = SampleTransform(source="env", cameras=cameras, camera_map=camera_map or {},
                                  max_action_dim=max_action_dim, horizon=1, norm_stats=norm_stats,
                                  image_size=image_size, clip_counter=self.clip_counter)

    @classmethod
    def for_env(cls, env: Any, *, model_spec: Any, norm_stats: NormStats, camera_map: dict[str, str] | None = None,
                image_size: int | None = None) -> ObservationTransform:
        return cls(cameras=model_spec.cameras, max_action_dim=model_spec.max_action_dim, norm_stats=norm_stats,
                   robot_type=env.robot_type, camera_map=camera_map, image_size=image_size)

    def __call__(self, obs: Any | Sequence[Any]) -> Any:
        """``EnvObservation`` (or a list of them) -> batched ``Observation`` (B = 1 or len)."""
        import torch

        from vlakit.types import Observation

        batch = [obs] if not isinstance(obs, (list, tuple)) else list(obs)
        rows = []
        for o in batch:
            images, masks = self._t.images(o.images)
            state, state_mask = self._t.state(np.asarray(o.state, np.float32), self.robot_type)
            rows.append((images, masks, state, state_mask, o.prompt))
        cams = list(rows[0][0])
        return Observation(
            images={c: torch.from_numpy(np.stack([r[0][c] for r in rows])) for c in cams},
            image_masks={c: torch.tensor([r[1][c] for r in rows]) for c in cams},
            state=torch.from_numpy(np.stack([r[2] for r in rows])),
            state_mask=torch.from_numpy(np.stack([r[3] for r in rows])),
            prompt=[r[4] for r in rows],
        )

    def unnormalize_actions(self, actions: Any) -> np.ndarray:
        """Normalised padded actions ``[..., A_pad]`` (tensor or array) -> raw ``[..., A_robot]``."""
        if hasattr(actions, "detach"):
            actions = actions.detach().float().cpu().numpy()
        actions = np.asarray(actions, np.float32)
        return unnormalize(actions[..., : self.action_stats.dim], self.action_stats, self.norm_stats.mode)
