"""Closed-loop evaluation: rollouts of any registered environment, success per family with Wilson CIs,
JSON report, rich table and an episode strip (PNG/GIF) with the predicted subtasks drawn."""

from vlakit.evaluation.actors import Actor, ActorStep, ExpertActor, PolicyActor, RandomActor
from vlakit.evaluation.evaluator import EvalReport, evaluate, make_env
from vlakit.evaluation.metrics import EpisodeResult, GroupStats, aggregate, wilson_interval

__all__ = ["Actor", "ActorStep", "EpisodeResult", "EvalReport", "ExpertActor", "GroupStats", "PolicyActor",
           "RandomActor", "aggregate", "evaluate", "make_env", "wilson_interval"]
