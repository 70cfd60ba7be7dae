"""The built-in bench recipes load, and every recipe with an RL phase names the published score it is judged by."""

import pytest

from aligngym.runs.reward_benchmark import builtin_bench_recipes, grid_cells, load_bench_recipe


@pytest.mark.parametrize("name", sorted(builtin_bench_recipes()))
def test_builtin_recipe_loads_and_names_a_published_score_per_env(name):
    recipe = load_bench_recipe(name)
    assert grid_cells(recipe)
    if recipe.rl is not None:
        assert set(recipe.published) == set(recipe.envs)
        for score in recipe.published.values():
            assert isinstance(score["return"], float) and score["source"]


def test_extended_recipe_asks_the_return_question_at_the_chosen_protocol():
    recipe = load_bench_recipe("extended")
    config = recipe.rl_config(recipe.envs[0], recipe.methods[0])
    assert (recipe.envs, config.algo, config.total_timesteps) == (["Pendulum-v1"], "sac", 5000)
    assert len(recipe.seeds) >= 5
    assert {m.name for m in recipe.methods} >= {"bt", "r3m", "adaptive", "smoothing"}
    settings = {(n.teacher, level) for n in recipe.noises for level in n.levels}
    assert {("mistake", 0.0), ("mistake", 0.2), ("mistake", 0.3), ("irrational", 0.5)} <= settings
