"""``flow_matching``: the action expert denoises an action chunk (reference §3).

Convention (openpi): t = 1 is noise, t = 0 is data. Training draws ``t ~ 0.999 Beta(a, b) + 0.001``
per sample (openpi: a = 1.5, b = 1, the ``time_beta`` default), feeds ``x_t = t noise + (1 - t) a``
and regresses the velocity ``noise - a`` (or, with ``prediction: actions``, ``a`` itself). Inference
runs Euler steps from t = 1 to 0 (``dt = -1 / steps``) with only the action expert over the cached
prefix, from standard normal noise times ``inference.noise_scale`` (1 in openpi; 0 starts from
zero, a deterministic policy).

Segments (expert ``expert_index``): an optional state token block (π0) and the action block,
bidirectional within itself, seeing the prefix and subtask text (FAST tokens hide themselves).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from vlakit.config import ComponentConfig
from vlakit.interfaces.action_head import ActionHead, HeadContext, HeadPass, InferenceInputs, TrainingInputs
from vlakit.interfaces.language import ExpertRequest
from vlakit.interfaces.time_conditioning import TimeConditioning
from vlakit.nn.point_regression import point_mse, to_scaled
from vlakit.nn.segments import Segment
from vlakit.recipe.fields import Component
from vlakit.registry import ACTION_HEADS
from vlakit.types import ActionChunk


class FlowMatchingConfig(ComponentConfig):
    """Flow-matching action head.

    Attributes:
        expert: backbone variant of the action expert (e.g. ``gemma_300m``).
        time_conditioning: how the flow time conditions the expert (``adarms`` or ``concat_mlp``).
        steps: default number of Euler steps at inference.
        loss_mask: ``masked`` ignores padded action dims, padded timesteps and samples without
            actions; ``openpi_unmasked`` averages over every dim and timestep as openpi does (samples
            without actions are still ignored, they have no target).
        noise_samples: noise/time draws per robot sample in training. 1 is openpi: the action
            tokens join the one joint pass. k > 1 computes the prefix once and runs the action expert
            k times over its keys and values (only for samples with actions), which lowers the
            variance of the flow loss for little more than the expert's cost.
        time_beta: ``[a, b]`` of the training time distribution ``t ~ 0.999 Beta(a, b) + 0.001``.
            openpi's ``[1.5, 1]`` puts 15 % of the draws at t > 0.9. Only near t = 1 must the action
            come from the observation: at lower t the noisy chunk itself carries part of it
            (smooth chunks average the noise out over the horizon). A larger ``a`` spends more of
            the training there.
        prediction: what the expert's output is. ``velocity`` (openpi) regresses ``noise - a``: near
            t = 1 the expert must carry the noise from its input to its output besides working out the
            action. ``actions`` regresses ``a`` itself (x-prediction) with the same Euler sampler,
            taking the velocity as ``(x_t - a_pred) / t``.
        noise_correlation: ρ in [0, 1): each action dim's noise is ρ times one draw shared by the
            whole chunk plus sqrt(1 - ρ²) times a draw per step, so every value is still N(0, 1) but
            averaging the noisy chunk over its steps no longer cancels the noise. 0 is openpi
            (independent noise), in training and in sampling alike.
        point_weight: weight of an auxiliary loss, added to the flow loss, in which a linear layer on
            the action expert's tokens (averaged over the chunk) regresses where the current subtask
            happens (``Batch.subtask_point``; tabletop datasets carry the target object's and zone's
            table position). It asks the expert to locate what the instruction names, the signal the
            flow loss gives only weakly (README: Results). 0 (openpi) adds no layer and no loss.
        point_dim: size of the subtask point (tabletop: 4).
        point_share: share of the robot samples drawn at t = 1 (pure noise: what the expert sees at
            the first Euler step) when ``point_weight`` > 0; the point loss reads only those. At
            lower t the noisy chunk gives the direction away, and with the gripper's state the
            point, so the expert would learn to read it there instead of from the observation.
        point_input: the action expert also reads the subtask point as one token of its own (a
            linear layer over the scaled table coordinates and which of them are known), besides the
            grid numbers of the subtask text. Training reads ``Batch.subtask_point`` (where the
            subtask happens); inference reads the policy's point query (``model.point_query``) before
            its answer is rounded to the text's grid, so the expert is not limited to the grid's
            precision. False (openpi) adds no layer and no token.
        point_input_noise: standard deviation (table units) of Gaussian noise added to the points the
            expert reads in training, so that it does not trust them beyond what the point query's
            answers are worth at inference.
    """

    type: Literal["flow_matching"] = "flow_matching"
    expert: str = "gemma_300m"
    time_conditioning: Component("time_conditionings", default_type="adarms") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"type": "adarms"}, validate_default=True)
    steps: int = Field(10, ge=1)
    loss_mask: Literal["masked", "openpi_unmasked"] = "masked"
    noise_samples: int = Field(1, ge=1)
    time_beta: tuple[float, float] = (1.5, 1.0)
    prediction: Literal["velocity", "actions"] = "velocity"
    noise_correlation: float = Field(0.0, ge=0.0, lt=1.0)
    point_weight: float = Field(0.0, ge=0.0)
    point_dim: int = Field(4, ge=1)
    point_share: float = Field(0.25, gt=0.0, le=1.0)
    point_input: bool = False
    point_input_noise: float = Field(0.0, ge=0.0)

    @field_validator("time_beta")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if min(v) <= 0:
            raise ValueError(f"both Beta parameters must be > 0, got {list(v)}")
        return v

    def expert_request(self, owner: str) -> ExpertRequest:
        return ExpertRequest(owner=owner, variant=self.expert,
                             adaptive_norms=bool(getattr(self.time_conditioning, "adaptive_norms", False)))

    def build(self, *, context: HeadContext) -> FlowMatchingHead:
        width, dim = context.expert_width, context.action_dim
        return FlowMatchingHead(
            action_in_proj=nn.Linear(dim, width), action_out_proj=nn.Linear(width, dim),
            time_conditioning=self.time_conditioning.build(width=width), expert_index=context.expert_index,
            horizon=context.horizon, steps=self.steps, loss_mask=self.loss_mask, noise_samples=self.noise_samples,
            time_beta=self.time_beta, prediction=self.prediction, noise_correlation=self.noise_correlation,
            point_proj=nn.Linear(width, self.point_dim) if self.point_weight > 0 else None,
            point_weight=self.point_weight, point_share=self.point_share,
            point_in_proj=nn.Linear(2 * self.point_dim, width) if self.point_input else None,
            point_input_noise=self.point_input_noise)


def sample_time(batch_size: int, *, device: torch.device | str = "cpu",
                time_beta: tuple[float, float] = (1.5, 1.0)) -> Tensor:
    """``0.999 * Beta(a, b) + 0.001`` per sample (openpi: a, b = 1.5, 1): float ``[B]`` in [0.001, 1]."""
    a, b = time_beta
    beta = torch.distributions.Beta(torch.tensor(float(a), device=device), torch.tensor(float(b), device=device))
    return beta.sample((batch_size,)) * 0.999 + 0.001


@ACTION_HEADS.register
class FlowMatchingHead(ActionHead):
    """Action in/out projections around the action expert, plus the time conditioning."""

    Config = FlowMatchingConfig

    def __init__(self, *, action_in_proj: nn.Linear, action_out_proj: nn.Linear, time_conditioning: TimeConditioning,
                 expert_index: int, horizon: int, steps: int = 10,
                 loss_mask: Literal["masked", "openpi_unmasked"] = "masked", noise_samples: int = 1,
                 time_beta: tuple[float, float] = (1.5, 1.0),
                 prediction: Literal["velocity", "actions"] = "velocity", noise_correlation: float = 0.0,
                 point_proj: nn.Linear | None = None, point_weight: float = 0.0, point_share: float = 0.25,
                 point_in_proj: nn.Linear | None = None, point_input_noise: float = 0.0) -> None:
        super().__init__()
        if noise_samples < 1:
            raise ValueError(f"noise_samples must be >= 1, got {noise_samples}")
        if expert_index < 1:
            raise ValueError(f"the flow-matching head needs an action expert (index >= 1), got {expert_index}")
        self.action_in_proj = action_in_proj
        self.action_out_proj = action_out_proj
        self.time_conditioning = time_conditioning
        self.expert_index = expert_index
        self.horizon = horizon
        self.steps = steps
        self.loss_mask = loss_mask
        self.samples_per_observation = noise_samples
        self.time_beta = (float(time_beta[0]), float(time_beta[1]))
        if prediction not in ("velocity", "actions"):
            raise ValueError(f"prediction must be 'velocity' or 'actions', got {prediction!r}")
        self.prediction = prediction
        if not 0.0 <= noise_correlation < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), got {noise_correlation}")
        self.noise_correlation = float(noise_correlation)
        if (point_proj is None) != (point_weight == 0):
            raise ValueError("point_proj and a positive point_weight go together")
        self.point_proj = point_proj
        self.point_weight = float(point_weight)
        if not 0.0 < point_share <= 1.0:
            raise ValueError(f"point_share must be in (0, 1], got {point_share}")
        self.point_share = float(point_share)
        if point_in_proj is not None and point_in_proj.in_features % 2:
            raise ValueError(f"point_in_proj reads values and their known-flags: in_features must be even, "
                             f"got {point_in_proj.in_features}")
        self.point_in_proj = point_in_proj
        if point_input_noise < 0:
            raise ValueError(f"point_input_noise must be >= 0, got {point_input_noise}")
        self.point_input_noise = float(point_input_noise)

    @property
    def reads_points(self) -> bool:
        """Whether the expert reads the subtask point as a token (``point_input``)."""
        return self.point_in_proj is not None

    def noise(self, shape: tuple[int, ...], *, device: torch.device | str) -> Tensor:
        """Standard normal ``[B, H, A]``, correlated along H by ``noise_correlation``."""
        noise = torch.randn(shape, device=device)
        if self.noise_correlation > 0:
            rho = self.noise_correlation
            shared = torch.randn(shape[0], 1, shape[2], device=device)
            noise = rho * shared + (1.0 - rho**2) ** 0.5 * noise
        return noise

    @property
    def action_dim(self) -> int:
        return self.action_in_proj.in_features

    def point_token(self, points: Tensor | None) -> Tensor:
        """Subtask points ``[B, P]`` (table coordinates, NaN where unknown) -> the expert's point token
        ``[B, 1, D_e]``."""
        assert self.point_in_proj is not None
        dim = self.point_in_proj.in_features // 2
        if points is None:
            raise ValueError("flow_matching.point_input: the action expert reads the subtask point, but none was "
                             "given (training batches need 'subtask_point', as tabletop sources with "
                             "subtask_points carry; inference needs model.point_query)")
        if points.ndim != 2 or points.shape[1] != dim:
            raise ValueError(f"subtask points are {list(points.shape)}, the flow head's point_dim gives [B, {dim}]")
        points = points.to(device=self.point_in_proj.weight.device, dtype=torch.float32)
        known = torch.isfinite(points)
        scaled = torch.where(known, to_scaled(points), torch.zeros_like(points))
        feats = torch.cat([scaled, known.float()], dim=1).to(self.point_in_proj.weight.dtype)
        return self.point_in_proj(feats)[:, None]

    def suffix(self, x_t: Tensor, time: Tensor, state_tokens: Tensor | None,
               points: Tensor | None = None) -> tuple[list[Segment], Tensor | None]:
        """Noisy chunk ``[B, H, A]`` and time ``[B]`` (and, with ``point_input``, the subtask points
        ``[B, P]``) -> (state/point/action segments, adaRMS condition or None)."""
        tokens = self.action_in_proj(x_t.to(self.action_in_proj.weight.dtype))
        tokens, cond = self.time_conditioning(tokens, time)
        b, h = tokens.shape[:2]
        segs = []
        if state_tokens is not None:
            segs.append(Segment("state", state_tokens, torch.ones(state_tokens.shape[:2], dtype=torch.bool,
                                                                  device=tokens.device),
                                expert=self.expert_index, attention="block"))
        if self.point_in_proj is not None:
            point = self.point_token(points).to(tokens.dtype)
            segs.append(Segment("point", point, torch.ones(b, 1, dtype=torch.bool, device=tokens.device),
                                expert=self.expert_index, attention="block"))
        segs.append(Segment("actions", tokens, torch.ones(b, h, dtype=torch.bool, device=tokens.device),
                            expert=self.expert_index, attention="block"))
        return segs, cond

    def prepare(self, inputs: TrainingInputs) -> HeadPass:
        actions = inputs.batch.actions
        if actions.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(f"batch actions are {tuple(actions.shape)}, the flow head expects "
                             f"[B, {self.horizon}, {self.action_dim}] (horizon, max_action_dim)")
        actions = actions.float()
        noise = self.noise(tuple(actions.shape), device=actions.device)
        time = sample_time(actions.shape[0], device=actions.device, time_beta=self.time_beta)
        aux: dict[str, Tensor] = {}
        if self.point_proj is not None:  # these samples start from pure noise, and the point loss reads them
            at_noise = torch.rand(actions.shape[0], device=actions.device) < self.point_share
            time = torch.where(at_noise, torch.ones_like(time), time)
            aux["at_noise"] = at_noise
        x_t = time[:, None, None] * noise + (1.0 - time[:, None, None]) * actions
        points = None
        if self.point_in_proj is not None:
            points = inputs.batch.subtask_point
            if points is None and not bool(inputs.batch.has_actions.any()):  # no flow target: nothing to read
                points = torch.full((actions.shape[0], self.point_in_proj.in_features // 2), float("nan"),
                                    device=actions.device)
            if points is not None and self.point_input_noise > 0:
                points = points.float() + self.point_input_noise * torch.randn_like(points.float())
        segs, cond = self.suffix(x_t, time, inputs.state_tokens, points)
        conds = {self.expert_index: cond} if cond is not None else {}
        aux["target"] = noise - actions if self.prediction == "velocity" else actions
        return HeadPass(segments=segs, conds=conds, aux=aux)

    def loss(self, *, inputs: TrainingInputs, prepared: HeadPass, hidden: dict[str, Tensor],
             logits: Any = None) -> Tensor:
        batch = inputs.batch
        pred = self.action_out_proj(hidden["actions"]).float()
        err = (pred - prepared.aux["target"]).pow(2)  # [B, H, A]
        weight = batch.has_actions.to(err.device)[:, None, None].expand_as(err)
        if self.loss_mask == "masked":
            weight = weight & ~batch.action_is_pad.to(err.device)[:, :, None] \
                & batch.action_dim_mask.to(err.device)[:, None, :]
        w = weight.float()
        # no sample with a target: a zero that keeps the graph (the stage's other losses still train)
        loss = (err * w).sum() / w.sum().clamp_min(1.0)
        if self.point_proj is not None:
            rows = prepared.aux.get("at_noise")
            loss = loss + self.point_weight * self.point_loss(batch, hidden["actions"], rows=rows)
        return loss

    def point_loss(self, batch: Any, hidden: Tensor, *, rows: Tensor | None = None) -> Tensor:
        """Squared error of the subtask point regressed from the action tokens ``hidden`` [B, H, D],
        over the entries that have a point (NaN marks none) in ``rows`` (bool [B], default all), on
        table coordinates centred and scaled to about unit spread (``4 (p - 0.5)``)."""
        assert self.point_proj is not None
        if batch.subtask_point is None:
            raise ValueError("flow_matching.point_weight > 0 needs batches with subtask points (robot data with "
                             "a 'subtask.point' column, as the tabletop datasets have); this batch has none")
        pred = self.point_proj(hidden.mean(1)).float()
        target = batch.subtask_point.to(pred.device).float()
        if target.shape != pred.shape:
            raise ValueError(f"subtask points are {list(target.shape)}, the flow head's point_dim gives "
                             f"{list(pred.shape)}")
        known = batch.has_actions.to(pred.device)[:, None]
        if rows is not None:
            known = known & rows.to(pred.device)[:, None]
        return point_mse(pred, target, known=known)

    @torch.no_grad()
    def sample(self, inputs: InferenceInputs, *, noise: Tensor | None = None,
               num_steps: int | None = None) -> ActionChunk:
        steps = num_steps or self.steps
        b = inputs.batch_size
        device = self.action_in_proj.weight.device
        shape = (b, self.horizon, self.action_dim)
        if noise is None:
            noise = self.noise(shape, device=device) * inputs.noise_scale
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must be [B, H, A] = {list(shape)}, got {list(noise.shape)}")
        x = noise.to(device=device, dtype=torch.float32)
        dt = -1.0 / steps
        for i in range(steps):
            time = torch.full((b,), 1.0 - i / steps, device=device)
            segs, cond = self.suffix(x, time, inputs.state_tokens, inputs.points)
            hidden = inputs.runner.run(segs, context=inputs.context,
                                       conds={self.expert_index: cond}).hidden["actions"]
            out = self.action_out_proj(hidden).float()
            velocity = out if self.prediction == "velocity" else (x - out) / time[:, None, None]
            x = x + dt * velocity
        return ActionChunk(actions=x, valid=torch.ones(b, dtype=torch.bool, device=device), errors=[None] * b)
