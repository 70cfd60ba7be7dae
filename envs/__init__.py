"""Gymnasium environments of aligngym; importing this module registers their ids (which imports nothing heavy).

The classes are imported on first use: ``aligngym.envs.AdversarialForceEnv`` loads MuJoCo, the text
environments (``aligngym.envs.text``) need the ``llm`` extra only for ReActQA's BM25 search.
"""

from aligngym.envs import mujoco_log
from aligngym.envs.registration import register_envs
from aligngym.exports import lazy_exports

register_envs()
mujoco_log.install()  # no MUJOCO_LOG.TXT, no known deprecation notices

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".registration": ["DESCRIPTIONS", "register_envs"],
        ".adversarial": [
            "TASKS",
            "AdversarialForceEnv",
            "AdversaryView",
            "ProtagonistView",
            "protagonist_env",
        ],
        ".learned_reward": ["LearnedRewardVecEnv", "LearnedRewardWrapper", "batch_rewards"],
        ".perturbations": [
            "DEFAULT_GRIDS",
            "GridRange",
            "GridResult",
            "ModelPerturbation",
            "NominalModel",
            "Perturbation",
            "plot_heatmap",
            "robustness_grid",
        ],
    },
)
