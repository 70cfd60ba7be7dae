"""Every registered aligngym id passes Gymnasium's checks; the adversarial game and its views behave."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import aligngym  # noqa: F401  (registers the ids)
from aligngym.envs.adversarial import TASKS, AdversarialForceEnv, AdversaryView, ProtagonistView

ALIGNGYM_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("aligngym/"))

# Gymnasium's own tests (tests/envs/test_envs.py) accept exactly these check_env warnings.
CHECK_ENV_IGNORE_WARNINGS = [
    f"\x1b[33mWARN: {message}\x1b[0m"
    for message in [
        "A Box observation space minimum value is -infinity. This is probably too low.",
        "A Box observation space maximum value is infinity. This is probably too high.",
        (
            "For Box action spaces, we recommend using a symmetric and normalized space (range=[-1, 1] or [0, 1]). "
            "See https://stable-baselines3.readthedocs.io/en/master/guide/rl_tips.html for more information."
        ),
    ]
]
SEED, NUM_STEPS = 0, 50


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path, monkeypatch):
    """MuJoCo writes MUJOCO_LOG.TXT into the working directory when it compiles half_cheetah.xml."""
    monkeypatch.chdir(tmp_path)


def test_every_force_task_is_registered_twice():
    for task in TASKS:
        assert f"aligngym/Adversarial{task}-v0" in ALIGNGYM_IDS
        assert f"aligngym/{task}Protagonist-v0" in ALIGNGYM_IDS
        assert gym.spec(f"aligngym/Adversarial{task}-v0").max_episode_steps == 1000


@pytest.mark.parametrize("env_id", ALIGNGYM_IDS)
def test_check_env_without_unexpected_warnings(env_id):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id).unwrapped
        check_env(env, skip_render_check=True)
        env.close()
    unexpected = [str(w.message) for w in caught if w.message.args[0] not in CHECK_ENV_IGNORE_WARNINGS]
    assert not unexpected, unexpected


@pytest.mark.parametrize("env_id", ALIGNGYM_IDS)
def test_seeded_rollout_is_deterministic(env_id):
    env_1 = gym.make(env_id, disable_env_checker=True)
    env_2 = gym.make(env_id, disable_env_checker=True)
    assert data_equivalence(env_1.reset(seed=SEED), env_2.reset(seed=SEED), exact=True)
    env_1.action_space.seed(SEED)
    for step in range(NUM_STEPS):
        action = env_1.action_space.sample()
        out_1, out_2 = env_1.step(action), env_2.step(action)
        assert data_equivalence(out_1, out_2, exact=True), f"step {step}: {out_1} != {out_2}"
        assert env_1.observation_space.contains(out_1[0])
        if out_1[2] or out_1[3]:
            env_1.reset(seed=SEED)
            env_2.reset(seed=SEED)
    env_1.close()
    env_2.close()


@pytest.mark.parametrize("env_id", ALIGNGYM_IDS)
def test_pickle_round_trip(env_id):
    env = gym.make(env_id)
    env.action_space.seed(SEED)
    action = env.action_space.sample()
    env_reset, env_step = env.reset(seed=123), env.step(action)
    copy = pickle.loads(pickle.dumps(env))
    assert data_equivalence(env_reset, copy.reset(seed=123))
    assert data_equivalence(env_step, copy.step(action))
    env.close()
    copy.close()


def _torso_dx(sign: float, steps: int = 20, bound: float = 20.0) -> float:
    env = AdversarialForceEnv("Hopper", bodies=("torso",), force_bound=bound)
    env.reset(seed=0)
    start = env.data.body("torso").xpos[0]
    action = {
        "protagonist": np.zeros(3, dtype=np.float32),
        "adversary": np.array([sign * bound, 0.0], np.float32),
    }
    for _ in range(steps):
        env.step(action)
    return float(env.data.body("torso").xpos[0] - start)


def test_constant_push_moves_the_torso_and_the_sign_flips_it():
    none, forward, backward = _torso_dx(0.0), _torso_dx(1.0), _torso_dx(-1.0)
    assert forward > none + 0.02
    assert backward < none - 0.02


def test_force_is_clipped_written_to_xfrc_applied_and_cleared_on_reset():
    env = AdversarialForceEnv("Hopper", force_bound=5.0)
    env.reset(seed=0)
    foot = env.nominal.body_id("foot")
    _, reward, _, _, info = env.step(
        {"protagonist": np.zeros(3, np.float32), "adversary": np.array([100.0, -2.0])}
    )
    np.testing.assert_array_equal(env.data.xfrc_applied[foot], [5.0, 0.0, -2.0, 0.0, 0.0, 0.0])
    assert np.count_nonzero(env.data.xfrc_applied) == 2
    assert info["adversary_reward"] == -reward
    env.step({"protagonist": np.zeros(3, np.float32), "adversary": np.array([-100.0, 2.0])})  # lower clip
    np.testing.assert_array_equal(env.data.xfrc_applied[foot], [-5.0, 0.0, 2.0, 0.0, 0.0, 0.0])
    env.step({"protagonist": np.zeros(3, np.float32), "adversary": None})  # None: no force
    assert not env.data.xfrc_applied.any()
    env.step({"protagonist": np.zeros(3, np.float32), "adversary": np.array([1.0, 1.0])})
    env.reset(seed=1)
    assert not env.data.xfrc_applied.any()
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        env.step({"protagonist": np.zeros(3, np.float32), "adversary": np.zeros(3)})


@pytest.mark.parametrize(
    ("task", "torque", "names"),
    [
        ("Hopper", False, ["foot:fx", "foot:fz"]),
        ("Hopper", True, ["foot:fx", "foot:fz", "foot:ty"]),
        ("Swimmer", False, ["mid:fx", "mid:fy"]),
        ("Ant", True, ["torso:fx", "torso:fy", "torso:fz", "torso:tx", "torso:ty", "torso:tz"]),
        ("HalfCheetah", False, ["torso:fx", "torso:fz", "bfoot:fx", "bfoot:fz", "ffoot:fx", "ffoot:fz"]),
    ],
)
def test_planar_models_are_pushed_within_their_plane(task, torque, names):
    env = AdversarialForceEnv(task, torque=torque)
    assert env.adversary_action_names == names
    assert env.adversary_action_space.shape == (len(names),)
    assert env.action_space["protagonist"] == env.protagonist_action_space


def test_bad_task_body_and_bound_name_the_valid_choices():
    with pytest.raises(ValueError, match="valid tasks: Hopper, HalfCheetah"):
        AdversarialForceEnv("Humanoid")
    with pytest.raises(ValueError, match="unknown body 'head'; valid bodies: torso, thigh, leg, foot"):
        AdversarialForceEnv("Hopper", bodies=["head"])
    with pytest.raises(ValueError, match="force_bound"):
        AdversarialForceEnv("Hopper", force_bound=-1.0)


def test_make_kwargs_reach_the_env_and_the_task():
    env = gym.make(
        "aligngym/AdversarialHopper-v0",
        bodies=["torso", "foot"],
        force_bound=7.0,
        torque=True,
        reset_noise_scale=0.0,
    )
    assert env.action_space["adversary"].shape == (6,)
    assert env.action_space["adversary"].high[0] == 7.0
    first, _ = env.reset(seed=1)
    second, _ = env.reset(seed=2)
    np.testing.assert_array_equal(first, second)  # no reset noise


def test_protagonist_view_without_adversary_replays_the_raw_task():
    raw = gym.make("Hopper-v5")
    view = gym.make("aligngym/HopperProtagonist-v0")
    assert view.action_space == raw.action_space
    assert data_equivalence(raw.reset(seed=3)[0], view.reset(seed=3)[0], exact=True)
    raw.action_space.seed(3)
    for _ in range(NUM_STEPS):
        action = raw.action_space.sample()
        obs_raw, rew_raw, term_raw, *_ = raw.step(action)
        obs_view, rew_view, term_view, *_ = view.step(action)
        assert data_equivalence((obs_raw, rew_raw, term_raw), (obs_view, rew_view, term_view), exact=True)
        if term_raw:
            break


def test_adversary_view_negates_the_reward_and_opponents_can_be_swapped():
    from stable_baselines3.common.env_util import make_vec_env

    calls = []

    def still(obs):
        calls.append(obs)
        return np.zeros(3, dtype=np.float32)

    env = AdversaryView(AdversarialForceEnv("Hopper"), protagonist=still)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([1.0, 1.0], np.float32))
    assert reward == -info["protagonist_reward"] == info["adversary_reward"]
    assert len(calls) == 1

    pushes = []
    venv = make_vec_env(lambda: ProtagonistView(gym.make("aligngym/AdversarialHopper-v0")), n_envs=2, seed=0)
    venv.reset()
    venv.env_method("set_opponent", lambda obs: pushes.append(obs) or np.ones(2, np.float32))
    venv.step(np.zeros((2, 3), np.float32))
    assert len(pushes) == 2
    with pytest.raises(TypeError, match="two-player"):
        ProtagonistView(gym.make("Hopper-v5"))


def test_reset_options_perturb_the_game_for_one_episode():
    env = AdversarialForceEnv("Hopper")
    torso = env.nominal.body_id("torso")
    nominal = env.model.body_mass[torso]
    env.reset(seed=0, options={"mass_scale": 2.0, "friction_scale": 0.5})
    assert env.model.body_mass[torso] == pytest.approx(2 * nominal)
    assert env.model.geom_friction[0, 0] == pytest.approx(0.5 * env.nominal.geom_friction[0, 0])
    env.reset(seed=0)
    assert env.model.body_mass[torso] == nominal
    np.testing.assert_array_equal(env.model.geom_friction, env.nominal.geom_friction)
    with pytest.raises(ValueError, match="unknown reset option.*'mass'.*valid options: mass_scale"):
        env.reset(options={"mass": 2.0})


def test_make_from_outside_the_repo(tmp_path):
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('aligngym.envs:aligngym/AdversarialHopper-v0')\n"
        "env.reset(seed=0); env.step(env.action_space.sample())\n"
        "import aligngym\n"
        "view = gym.make('aligngym/HopperProtagonist-v0'); view.reset(seed=0)\n"
        "print(type(env.unwrapped).__module__, view.action_space.shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "aligngym.envs.adversarial (3,)" in result.stdout


@pytest.fixture()
def one_torch_thread():
    """Tiny networks on a shared 2-core machine: torch's intra-op threads only contend (10x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_sb3_sac_and_ppo_train_on_both_views(one_torch_thread):
    from stable_baselines3 import PPO, SAC

    protagonist = SAC(
        "MlpPolicy",
        gym.make("aligngym/HopperProtagonist-v0"),
        learning_starts=100,
        batch_size=32,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
    )
    protagonist.learn(200)
    adversary_env = AdversaryView(
        gym.make("aligngym/AdversarialHopper-v0"),
        protagonist=lambda obs: protagonist.predict(obs, deterministic=True)[0],
    )
    adversary = PPO(
        "MlpPolicy",
        adversary_env,
        n_steps=128,
        batch_size=64,
        n_epochs=1,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
    )
    adversary.learn(256)
    assert protagonist.num_timesteps == 200 and adversary.num_timesteps == 256
    protagonist.get_env().env_method(
        "set_opponent", lambda obs: adversary.predict(obs, deterministic=True)[0]
    )
    protagonist.learn(100, reset_num_timesteps=False)
    force = adversary.predict(adversary_env.observation_space.sample(), deterministic=True)[0]
    assert force.shape == (2,) and np.all(np.abs(force) <= 5.0)
