"""The embedded tabletop world (registered env ``tabletop``). See DESIGN.md section 6."""

from vlakit.envs.tabletop.env import TabletopConfig, TabletopEnv
from vlakit.envs.tabletop.expert import ScriptedExpert
from vlakit.envs.tabletop.language import corpus
from vlakit.envs.tabletop.scene import SPLITS, combos, styles
from vlakit.envs.tabletop.tasks import FAMILIES, SINGLE_STEP_FAMILIES

__all__ = ["FAMILIES", "SINGLE_STEP_FAMILIES", "SPLITS", "ScriptedExpert", "TabletopConfig", "TabletopEnv", "combos",
           "corpus", "styles"]
