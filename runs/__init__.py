"""Running things: recipes, jobs and run folders, resumable sweeps, the reward-robustness benchmark, its
statistics and reports, and the ``aligngym`` command line (``aligngym.runs.cli:main``).

Names are imported on first use; this package sits on top (runs -> agents -> alignment -> rewards/envs).
"""

from aligngym.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".recipes": ["Recipe", "builtin_recipes", "load_recipe"],
        ".jobs": ["JOBS", "Job", "get_job"],
        ".training": ["run_recipe"],
        ".sweep": ["run_sweep"],
        ".reward_benchmark": [
            "BenchRecipe",
            "MethodSpec",
            "NoiseSpec",
            "grid_cells",
            "load_bench_recipe",
            "run_benchmark",
        ],
        ".reports": ["Report", "render_report"],
        ".statistics": ["iqm", "iqm_interval", "paired_difference", "probability_of_improvement"],
        ".errors": ["UsageError"],
        ".cli": ["main"],
    },
)
