"""Settings of the ReST loop (``rest`` job): the task, policies, SFT stages, generations, ranker and
distillation, validated at construction; and the check that a resumed run folder has the same settings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from aligngym.agents.react.agent import AgentConfig
from aligngym.alignment.models import ModelSpec
from aligngym.envs.text.knowledge_base import KnowledgeBaseConfig

RANKERS = ("outcome", "reward_model", "judge")


@dataclass
class SFTSettings:
    """One TRL SFT stage (fixed number of optimizer steps, so CPU time is predictable)."""

    max_steps: int = 300
    batch_size: int = 32
    learning_rate: float = 3e-3
    lr_scheduler: str = "cosine"
    warmup_steps: int = 20
    weight_decay: float = 0.0
    max_length: int = 1024
    """Longest training sequence in tokens (transcript + step)."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


@dataclass
class RestConfig:
    """Everything the ``rest`` job does: task, policies, bootstrap, generations, ranker, distillation."""

    knowledge_base: str = "default"
    """A knowledge-base JSON path, or ``default`` (the instance shipped with the package)."""
    kb: KnowledgeBaseConfig | None = None
    """Generate a knowledge base from this config instead of loading ``knowledge_base``."""
    top_k: int = 1
    """Search results shown per search."""
    max_searches: int = 5
    policy: ModelSpec = field(
        default_factory=lambda: ModelSpec(tiny_hidden_size=64, tiny_layers=2, tiny_heads=4)
    )
    """The policy: ``tiny`` (word-level tiny Llama, offline) or any causal-LM folder / hub id."""
    student: ModelSpec | None = None
    """Smaller model trained on the policy's data (self-distillation); None skips distillation."""
    demonstrations: int = 150
    """Training questions with a scripted demonstration (the bootstrap SFT data; 0 skips the bootstrap)."""
    bootstrap: SFTSettings = field(default_factory=lambda: SFTSettings(max_steps=1200, warmup_steps=50))
    finetune: SFTSettings = field(default_factory=lambda: SFTSettings(max_steps=300, learning_rate=1e-3))
    """The SFT stage of every generation (continues from the previous generation's weights)."""
    distill: SFTSettings = field(default_factory=lambda: SFTSettings(max_steps=900, warmup_steps=50))
    generations: int = 2
    questions_per_generation: int = 0
    """Training questions sampled per generation (0 = all)."""
    trajectories_per_question: list[int] = field(default_factory=lambda: [1, 2])
    """Episodes per question in generation 1, 2, ... (the last value repeats): the growing batch."""
    freeze_entity_embeddings: bool = True
    """Tiny policies only: entity-name embeddings are frozen random vectors (see models.freeze_embeddings)."""
    entity_embedding_std: float = 0.5
    """Standard deviation of those frozen vectors."""
    rename_copies: int = 4
    """Each SFT example is also trained in this many entity-renamed versions (0 for a pretrained model)."""
    candidates: int = 4
    """K: samples per step; the lowest-perplexity one continues, the ranker picks the target among them."""
    temperature: float = 0.8
    ranker: Literal["outcome", "reward_model", "judge"] = "outcome"
    ranker_model: str | None = None
    """Folder / hub id of the reward model (ranker=reward_model) or judge (ranker=judge; default: the policy)."""
    eval_splits: list[str] = field(default_factory=lambda: ["dev", "test"])
    eval_questions: int = 0
    """Questions per evaluation split (0 = all)."""
    eval_samples: int = 1
    """Candidates per step at evaluation (1 = greedy)."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """Decoding settings shared by sampling and evaluation (samples/temperature are set per use)."""
    control: bool = False
    """Also fine-tune generation 0 on the demonstrations alone for as many steps as all generations took:
    separates the effect of ReST's self-generated data from that of more training steps."""
    resume_from: str | None = None
    """A previous run folder of this job: finished stages are reused, the rest runs."""

    def __post_init__(self) -> None:
        if self.ranker not in RANKERS:
            raise ValueError(f"ranker {self.ranker!r} is not valid; valid choices: {', '.join(RANKERS)}")
        if self.ranker == "reward_model" and not self.ranker_model:
            raise ValueError(
                "ranker=reward_model needs ranker_model (a sequence-classification folder or hub id)"
            )
        if self.generations < 0 or self.demonstrations < 0 or self.questions_per_generation < 0:
            raise ValueError("generations, demonstrations and questions_per_generation must be >= 0")
        if not self.trajectories_per_question or min(self.trajectories_per_question) < 1:
            raise ValueError(
                f"trajectories_per_question must be a non-empty list of ints >= 1, got {self.trajectories_per_question}"
            )
        if self.rename_copies < 0 or self.entity_embedding_std <= 0:
            raise ValueError("rename_copies must be >= 0 and entity_embedding_std > 0")
        if self.candidates < 1 or self.eval_samples < 1:
            raise ValueError("candidates and eval_samples must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        bad = [s for s in self.eval_splits if s not in ("train", "dev", "test")]
        if bad:
            raise ValueError(f"eval split {bad[0]!r} is not valid; valid choices: train, dev, test")
        if self.demonstrations == 0 and self.policy.is_tiny:
            raise ValueError("a tiny policy starts untrained: it needs demonstrations > 0 for the bootstrap")
        if self.resume_from is not None:
            if not (Path(self.resume_from) / "rest_config.json").is_file():
                raise ValueError(
                    f"resume_from {self.resume_from!r} is not a rest run folder (no rest_config.json)"
                )
            check_resumable(Path(self.resume_from), self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_resumable(work_dir: Path, config: RestConfig) -> None:
    """Refuse to continue a loop in ``work_dir`` that was started with other settings (``resume_from`` aside)."""
    saved = work_dir / "rest_config.json"
    if not saved.is_file():
        return
    mine = json.loads(json.dumps(config.to_dict(), default=str))
    theirs = json.loads(saved.read_text())
    changed = sorted(
        k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k) and k != "resume_from"
    )
    if changed:
        raise ValueError(f"{str(work_dir)!r} was run with other settings: {', '.join(changed)}")
