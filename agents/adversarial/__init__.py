"""RARL and QARL on SB3: protagonist vs force adversary, temperature-conditioned adversaries (tempered SAC),
temperature curricula, resumable training with checkpoints, and robustness evaluation."""

from aligngym.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".training": [
            "AdversarialConfig",
            "AdversarialTrainer",
            "BaselineConfig",
            "CurriculumConfig",
            "QARLConfig",
            "RARLConfig",
            "evaluate_run",
            "load_players",
            "train_adversarial",
        ],
        ".evaluation": [
            "EvaluationConfig",
            "evaluate_players",
            "evaluation_game",
            "grid_summary",
            "train_worst_case_adversary",
            "worst_constant_push",
        ],
        ".curriculum": [
            "CURRICULA",
            "LinearAnnealCurriculum",
            "PointCurriculum",
            "SelfPacedGammaCurriculum",
            "TemperatureCurriculum",
        ],
        ".temperature": ["GammaTemperature", "PointTemperature", "TemperatureObservation"],
        ".tempered_sac": ["TemperedSAC"],
        ".opponents": ["ModelPolicy", "RandomForce", "make_game"],
        ".checkpoints": ["CheckpointFolder"],
    },
)
