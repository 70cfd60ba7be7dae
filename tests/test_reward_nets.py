"""Reward nets: shapes, ensembles in one batched pass, seeding, safetensors round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aligngym.rewards.reward_nets import RewardNet, RewardNetConfig, load_reward_net, save_reward_net


def test_default_is_a_2x64_mlp_over_obs_and_action() -> None:
    net = RewardNet(obs_dim=11, act_dim=3, seed=0)
    assert sum(p.numel() for p in net.parameters()) == (14 * 64 + 64) + (64 * 64 + 64) + (64 + 1)
    assert net(torch.zeros(7, 11), torch.zeros(7, 3)).shape == (7,)
    assert net(torch.zeros(2, 5, 11), torch.zeros(2, 5, 3)).shape == (2, 5)
    with pytest.raises(ValueError, match="pass actions"):
        net(torch.zeros(2, 11))


def test_same_seed_same_weights_and_the_global_rng_is_untouched() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = RewardNet(4, 2, seed=1), RewardNet(4, 2, seed=1), RewardNet(4, 2, seed=2)
    assert torch.equal(torch.rand(1), before)
    x, u = torch.randn(9, 4), torch.randn(9, 2)
    assert torch.equal(a(x, u), b(x, u)) and not torch.equal(a(x, u), c(x, u))


def test_ensemble_members_are_independent_and_forward_is_their_mean() -> None:
    net = RewardNet(obs_dim=3, act_dim=1, ensemble_size=4, seed=0)
    x, u = torch.randn(6, 3), torch.randn(6, 1)
    members = net.members(x, u)
    assert members.shape == (4, 6)
    assert not torch.allclose(members[0], members[1])
    torch.testing.assert_close(net(x, u), members.mean(dim=0))
    # member k equals a plain MLP with member k's weights
    k = 2
    h = torch.cat([x, u], dim=-1)
    layers = [m for m in net.body if hasattr(m, "weight")]
    for index, layer in enumerate(layers):
        h = h @ layer.weight[k] + layer.bias[k]
        if index < len(layers) - 1:
            h = torch.relu(h)
    torch.testing.assert_close(members[k], h.squeeze(-1))


def test_segment_returns_sum_rewards_over_time_in_chunks() -> None:
    net = RewardNet(obs_dim=2, act_dim=1, seed=0)
    obs, act = (
        np.random.default_rng(0).normal(size=(2, 50, 8, 2)).astype(np.float32),
        np.zeros((50, 8, 1), np.float32),
    )
    returns = net.segment_returns(obs[0], act, batch_size=16)  # 2 segments per chunk
    expected = net(torch.as_tensor(obs[0]), torch.as_tensor(act)).sum(dim=-1).detach()
    torch.testing.assert_close(returns, expected)
    assert not returns.requires_grad


def test_reward_fn_adapter_for_learned_reward_wrappers() -> None:
    net = RewardNet(obs_dim=3, act_dim=1, seed=0)
    obs, act = np.ones((4, 3)), np.ones((4, 1))
    rewards = net.as_reward_fn()(obs, act, obs)
    assert rewards.shape == (4,) and rewards.dtype == np.float64
    np.testing.assert_allclose(rewards, net(torch.ones(4, 3), torch.ones(4, 1)).detach().numpy(), rtol=1e-6)


def test_save_and_load_round_trip(tmp_path) -> None:
    net = RewardNet(obs_dim=5, act_dim=2, hidden=(16, 8), activation="tanh", ensemble_size=3, seed=4)
    path = tmp_path / "reward.safetensors"
    save_reward_net(net, path)
    loaded = load_reward_net(path)
    assert loaded.config == net.config
    x, u = torch.randn(3, 5), torch.randn(3, 2)
    torch.testing.assert_close(loaded(x, u), net(x, u))
    # plain state dicts work too
    clone = RewardNet(config=net.config)
    clone.load_state_dict(net.state_dict())
    torch.testing.assert_close(clone(x, u), net(x, u))


def test_foreign_safetensors_file_is_rejected(tmp_path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a saved aligngym reward net"):
        load_reward_net(path)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"obs_dim": 0}, "obs_dim=0"),
        ({"obs_dim": 3, "activation": "gelu"}, "unknown activation 'gelu'; valid: relu, tanh, leaky_relu"),
        ({"obs_dim": 3, "ensemble_size": 0}, "ensemble_size=0"),
        ({"obs_dim": 3, "hidden": (64, 0)}, "positive layer widths"),
    ],
)
def test_config_validation(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        RewardNetConfig(**kwargs)


def test_observation_only_reward() -> None:
    net = RewardNet(obs_dim=3, use_action=False, seed=0)
    assert net(torch.zeros(4, 3)).shape == (4,)
