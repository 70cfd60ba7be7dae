"""Recipe machinery: typed coercion, dotted overrides, validation messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from aligngym.runs.errors import UsageError
from aligngym.runs.recipes import builtin_recipes, coerce, load_recipe, parse_override, recipe_from_dict


@dataclass
class Inner:
    width: int = 64


@dataclass
class Example:
    rate: float = 0.1
    steps: int = 10
    mode: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    maybe: Optional[int] = None  # noqa: UP045  (typing.Optional on purpose: coerce handles typing.Union too)
    inner: Inner = field(default_factory=Inner)


def test_coerce_accepts_int_for_float_and_rejects_bool_for_int():
    assert coerce(3, float, "rate") == 3.0
    with pytest.raises(UsageError, match="expected int"):
        coerce(True, int, "steps")
    with pytest.raises(UsageError, match="valid choices: a, b"):
        coerce("c", Literal["a", "b"], "mode")
    assert coerce(None, Optional[int], "maybe") is None  # noqa: UP045  (typing.Union, see Example)
    assert coerce([1, 2], tuple[int, ...], "t") == (1, 2)
    with pytest.raises(UsageError, match=r"tags\[1\]"):
        coerce(["x", 2], list[str], "tags")


def test_parse_override_uses_yaml_types():
    assert parse_override("a=3") == ("a", 3)
    assert parse_override("a=0.5") == ("a", 0.5)
    assert parse_override("a=[1, 2]") == ("a", [1, 2])
    assert parse_override("a=hello") == ("a", "hello")
    with pytest.raises(UsageError):
        parse_override("nothing")


def test_every_builtin_recipe_loads():
    recipes = builtin_recipes()
    assert recipes
    for name in recipes:
        recipe = load_recipe(name)
        assert recipe.job and recipe.name


def test_overrides_reach_nested_dicts():
    recipe = recipe_from_dict(
        {"job": "sb3", "config": {"env_id": "CartPole-v1"}},
        ["hyperparams.n_steps=32", "policy_kwargs.net_arch=[8, 8]", "seed=4"],
    )
    assert recipe.seed == 4
    assert recipe.config.hyperparams == {"n_steps": 32}
    assert recipe.config.policy_kwargs == {"net_arch": [8, 8]}


def test_post_init_validation_becomes_a_usage_error():
    with pytest.raises(UsageError, match="total_timesteps must be positive"):
        recipe_from_dict({"job": "sb3", "config": {"total_timesteps": 0}})


def test_unknown_top_level_key():
    with pytest.raises(UsageError, match="valid keys: job, name, seed, config"):
        recipe_from_dict({"job": "sb3", "confg": {}})
