"""Recipes: YAML files that name a job and its dataclass config, with typed ``key=value`` overrides.

A recipe looks like::

    job: sb3            # a job name from `aligngym train --list`
    name: ppo-pendulum  # used in the run folder name
    seed: 0
    config:             # fields of the job's config dataclass
      algo: ppo
      env_id: Pendulum-v1

Overrides address the same keys: ``seed=3``, ``name=try2``, ``total_timesteps=1000`` (a config field),
``policy_kwargs.net_arch=[32,32]`` (a key inside a dict or nested dataclass field).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from aligngym.runs.errors import UsageError
from aligngym.runs.jobs import get_job

RECIPE_DIR = Path(__file__).parent / "recipes"
TOP_LEVEL_KEYS = ("job", "name", "seed", "config")


@dataclass
class Recipe:
    """A resolved recipe: which job, how its run folder is named, the seed, the typed config."""

    job: str
    name: str
    seed: int
    config: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "name": self.name,
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
        }


def builtin_recipes() -> dict[str, Path]:
    """Recipes shipped with the package, by file stem."""
    return {p.stem: p for p in sorted(RECIPE_DIR.glob("*.yaml"))}


def resolve_recipe_path(recipe: str) -> Path:
    """A recipe argument is a YAML path or the name of a built-in recipe."""
    path = Path(recipe)
    if path.is_file():
        return path
    builtins = builtin_recipes()
    if recipe in builtins:
        return builtins[recipe]
    raise UsageError(
        f"recipe {recipe!r} is neither a file nor a built-in recipe; built-in: {', '.join(builtins) or '(none)'}"
    )


def load_recipe(recipe: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe (path or built-in name), apply ``key=value`` overrides, type-check everything."""
    path = resolve_recipe_path(recipe)
    return recipe_from_dict(read_yaml(path, "recipe"), overrides, source=str(path))


def read_yaml(path: Path, what: str = "recipe") -> Any:
    """A YAML file's content; UsageError (one line) for an unreadable, non-UTF-8 or invalid file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise UsageError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{what} {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None


def recipe_from_dict(raw: Any, overrides: list[str] | tuple[str, ...] = (), source: str = "recipe") -> Recipe:
    """Build a typed Recipe from a plain mapping (as read from YAML)."""
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: a recipe must be a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise UsageError(
            f"{source}: unknown top-level key {unknown[0]!r}; valid keys: {', '.join(TOP_LEVEL_KEYS)}"
        )
    if "job" not in raw:
        raise UsageError(f"{source}: missing 'job'")
    job = get_job(str(raw["job"]))
    config_cls = job.config_class()
    values = dict(raw.get("config") or {})
    if not isinstance(values, dict):
        raise UsageError(f"{source}: 'config' must be a mapping of {config_cls.__name__} fields")
    top = {"name": raw.get("name", job.name), "seed": raw.get("seed", 0)}
    for item in overrides:
        key, value = parse_override(item)
        if key in ("name", "seed"):
            top[key] = value
        elif key == "job":
            raise UsageError("the job cannot be overridden; write another recipe")
        else:
            set_dotted(values, key, value)
    name = coerce(top["name"], str, "name")
    seed = coerce(top["seed"], int, "seed")
    config = build_dataclass(config_cls, values, prefix="")
    return Recipe(job=job.name, name=name, seed=seed, config=config)


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` -> (key, YAML-parsed value)."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise UsageError(f"override {item!r} is not of the form key=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` inside nested dicts, creating the intermediate dicts."""
    *parents, leaf = key.split(".")
    node = values
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {} if child is None else child
            if not isinstance(child, dict):
                raise UsageError(f"override {key!r}: {part!r} is not a mapping")
            node[part] = child
        node = child
    node[leaf] = value


def build_dataclass(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, rejecting unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UsageError(
            f"unknown config key {prefix + unknown[0]!r} for {cls.__name__}; valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: coerce(value, hints[name], prefix + name) for name, value in values.items()}
    env_id = kwargs.get("env_id")
    if isinstance(env_id, str) and ":" in env_id:  # gym.make("module:Env-v0") imports that module
        raise UsageError(
            f"{prefix}env_id={env_id!r}: a 'module:id' env id imports code; give a registered id (see `aligngym envs`)"
        )
    for name, value in kwargs.items():  # .inf only where the field's own default is infinite (no limit)
        default = fields[name].default
        if (
            isinstance(value, float)
            and math.isinf(value)
            and not (isinstance(default, float) and math.isinf(default))
        ):
            raise UsageError(f"{prefix + name}={value!r} must be a finite number")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"invalid {cls.__name__}: {exc}") from None


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp`` (YAML types; ints pass as floats), converting lists to tuples."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        _check_finite(value, key)
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key)
            except UsageError as exc:
                if isinstance(value, dict) and dataclasses.is_dataclass(arg):
                    raise  # a mapping for this dataclass: its own error names the bad field or value
                errors.append(exc)
        raise _type_error(key, value, tp)
    if origin is Literal:
        if value in args:
            return value
        raise UsageError(f"{key}={value!r} is not a valid choice; valid choices: {', '.join(map(str, args))}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _type_error(key, value, tp)
        return build_dataclass(tp, value, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, value, tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _type_error(key, value, tp)
            return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(key, value, tp)
        vt = args[1] if args else Any
        return {k: coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(value):
                raise UsageError(f"{key}={value!r} must be a number, not NaN")
            return float(value)
        raise _type_error(key, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(key, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, value, tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(key, value, tp)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _type_error(key, value, tp)


def _check_finite(value: Any, key: str) -> None:
    """Untyped values (hyperparams, kwargs) may hold no NaN or infinity at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{key}={value!r} must be a finite number")
    if isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, f"{key}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_finite(item, f"{key}[{index}]")


def _type_error(key: str, value: Any, tp: Any) -> UsageError:
    name = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
    return UsageError(f"{key}={value!r} has type {type(value).__name__}; expected {name}")
