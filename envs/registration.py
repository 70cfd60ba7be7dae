"""Every ``aligngym/...`` id, registered with string entry points so that registering imports nothing heavy."""

from __future__ import annotations

import gymnasium as gym

NAMESPACE = "aligngym"

# id -> one-line description, shown by `aligngym envs`. Filled by register_envs().
DESCRIPTIONS: dict[str, str] = {}


def _register(name: str, entry_point: str, description: str, **kwargs) -> None:
    env_id = f"{NAMESPACE}/{name}"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **kwargs)
    DESCRIPTIONS[env_id] = description


# MuJoCo tasks with an adversarial-force channel: task -> (pushed bodies, reward_threshold of Gymnasium's v5 id).
_FORCE_TASKS = {
    "Hopper": ("the foot", 3800.0),
    "HalfCheetah": ("the torso and both feet", 4800.0),
    "Walker2d": ("both feet", None),
    "Ant": ("the torso", 6000.0),
    "InvertedPendulum": ("the pole", 950.0),
    "Swimmer": ("the middle segment", 360.0),
}


def register_envs() -> None:
    """Register all aligngym ids (idempotent)."""
    for task, (bodies, threshold) in _FORCE_TASKS.items():
        _register(
            f"Adversarial{task}-v0",
            "aligngym.envs.adversarial:AdversarialForceEnv",
            f"two-player zero-sum {task}-v5: protagonist actuators vs adversary forces on {bodies}",
            kwargs={"task": task},
            max_episode_steps=1000,
            reward_threshold=threshold,
        )
        _register(
            f"{task}Protagonist-v0",
            "aligngym.envs.adversarial:protagonist_env",
            f"{task}-v5 through the force channel of Adversarial{task}-v0, protagonist view, no adversary",
            kwargs={"task": task},
            max_episode_steps=1000,
            reward_threshold=threshold,
        )
    _register(
        "AdversarialPointMass-v0",
        "aligngym.envs.point_mass:PointMassWindEnv",
        "two-player zero-sum point mass (pure Python): reach the goal through a gap vs a 10x stronger wind",
        max_episode_steps=500,
    )
    _register(
        "PointMassProtagonist-v0",
        "aligngym.envs.point_mass:protagonist_env",
        "the point mass of AdversarialPointMass-v0, protagonist view, no wind",
        max_episode_steps=500,
    )
    _register(
        "TextGeneration-v0",
        "aligngym.envs.text.generation:TextGenerationEnv",
        "one-step text generation: prompt -> response, reward from a text task, a function or a reward model",
    )
    _register(
        "ReActQA-v0",
        "aligngym.envs.text.react:ReActQAEnv",
        "multi-hop QA with a BM25 search tool: transcript -> next step Search[query] / Finish[answer]",
        max_episode_steps=20,
    )
