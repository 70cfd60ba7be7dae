"""The QARL adversary's SAC on SBX (JAX): the entropy coefficient read, per sample, from the observation.

The same semantics as the torch ``TemperedSAC``, written against SBX's own ``SAC`` (``sbx-rl`` 0.28,
the ``sbx`` extra): alpha_i = max(obs_i[temperature_index], 0); the soft Bellman target uses alpha of the
next observation, the actor loss alpha of the current one; there is no entropy-coefficient optimiser.
SBX's jitted ``_train`` loop (``fori_loop`` over the gradient steps) stays as it is: only the two update
functions it calls are replaced, and its entropy-coefficient state holds a module that maps observations
to their alphas instead of one global coefficient.
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState
from sbx import SAC
from sbx.common.type_aliases import RLTrainState


class ObservedTemperature(nn.Module):
    """alpha_i = max(observations[i, temperature_index], 0), one per sample, shape (batch, 1)."""

    temperature_index: int = -1

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        # The parameter SBX's ConstantEntropyCoef holds too (never trained), so both states look alike.
        self.param("dummy_param", lambda key: jnp.zeros(()))
        return jnp.maximum(observations[:, self.temperature_index], 0.0)[:, None]


class TemperedSBXSAC(SAC):
    """SBX SAC with a per-sample entropy coefficient alpha = ``observation[:, temperature_index]``.

    ``ent_coef`` must be left alone (it is fixed to 0 and unused); all other SBX SAC arguments pass through.

    Example:
        >>> import gymnasium as gym
        >>> from aligngym.agents.adversarial.temperature import GammaTemperature, TemperatureObservation
        >>> env = TemperatureObservation(gym.make("Pendulum-v1"), GammaTemperature(50, 1000))
        >>> model = TemperedSBXSAC("MlpPolicy", env, learning_starts=64, seed=0).learn(128)
    """

    def __init__(self, policy: Any, env: Any, temperature_index: int = -1, **kwargs: Any) -> None:
        ent_coef = kwargs.pop("ent_coef", 0.0)
        if ent_coef not in (0, 0.0):
            raise ValueError(
                f"TemperedSBXSAC reads alpha from the observation; ent_coef must stay unset (got {ent_coef!r})"
            )
        self.temperature_index = temperature_index
        super().__init__(policy, env, ent_coef=0.0, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        # Replace SBX's constant coefficient by the observation's; same params, no extra draw from self.key.
        self.ent_coef = ObservedTemperature(self.temperature_index)  # type: ignore[assignment]
        self.ent_coef_state = TrainState.create(
            apply_fn=self.ent_coef.apply, params=self.ent_coef_state.params, tx=optax.identity()
        )

    @staticmethod
    @jax.jit
    def update_critic(
        actor_state: TrainState,
        qf_state: RLTrainState,
        ent_coef_state: TrainState,
        observations: jax.Array,
        actions: jax.Array,
        next_observations: jax.Array,
        rewards: jax.Array,
        dones: jax.Array,
        discounts: jax.Array,
        key: jax.Array,
    ) -> tuple[RLTrainState, tuple[jax.Array, jax.Array], jax.Array]:
        """SBX's critic update with alpha of each NEXT observation in the soft target."""
        key, noise_key, dropout_key_target, dropout_key_current = jax.random.split(key, 4)
        dist = actor_state.apply_fn(actor_state.params, next_observations)
        next_state_actions = dist.sample(seed=noise_key)
        next_log_prob = dist.log_prob(next_state_actions)
        alphas = ent_coef_state.apply_fn({"params": ent_coef_state.params}, next_observations)

        qf_next_values = qf_state.apply_fn(
            qf_state.target_params,
            next_observations,
            next_state_actions,
            rngs={"dropout": dropout_key_target},
        )
        next_q_values = jnp.min(qf_next_values, axis=0) - alphas * next_log_prob[:, None]
        target_q_values = rewards[:, None] + (1 - dones[:, None]) * discounts[:, None] * next_q_values

        def mse_loss(params: flax.core.FrozenDict, dropout_key: jax.Array) -> jax.Array:
            current_q_values = qf_state.apply_fn(params, observations, actions, rngs={"dropout": dropout_key})
            return 0.5 * ((target_q_values - current_q_values) ** 2).mean(axis=1).sum()

        qf_loss_value, grads = jax.value_and_grad(mse_loss)(qf_state.params, dropout_key_current)
        qf_state = qf_state.apply_gradients(grads=grads)
        return qf_state, (qf_loss_value, alphas.mean()), key

    @staticmethod
    @jax.jit
    def update_actor(
        actor_state: RLTrainState,
        qf_state: RLTrainState,
        ent_coef_state: TrainState,
        observations: jax.Array,
        key: jax.Array,
    ) -> tuple[RLTrainState, RLTrainState, jax.Array, jax.Array, jax.Array]:
        """SBX's actor update with alpha of each (current) observation in the loss."""
        key, dropout_key, noise_key = jax.random.split(key, 3)
        alphas = ent_coef_state.apply_fn({"params": ent_coef_state.params}, observations)

        def actor_loss(params: flax.core.FrozenDict) -> tuple[jax.Array, jax.Array]:
            dist = actor_state.apply_fn(params, observations)
            actor_actions = dist.sample(seed=noise_key)
            log_prob = dist.log_prob(actor_actions).reshape(-1, 1)
            qf_pi = qf_state.apply_fn(
                qf_state.params, observations, actor_actions, rngs={"dropout": dropout_key}
            )
            min_qf_pi = jnp.min(qf_pi, axis=0)
            return (alphas * log_prob - min_qf_pi).mean(), -log_prob.mean()

        (actor_loss_value, entropy), grads = jax.value_and_grad(actor_loss, has_aux=True)(actor_state.params)
        actor_state = actor_state.apply_gradients(grads=grads)
        return actor_state, qf_state, actor_loss_value, key, entropy

    @classmethod
    def update_actor_and_temperature(
        cls,
        actor_state: RLTrainState,
        qf_state: RLTrainState,
        ent_coef_state: TrainState,
        observations: jax.Array,
        target_entropy: Any,
        key: jax.Array,
    ) -> tuple[RLTrainState, RLTrainState, TrainState, jax.Array, jax.Array, jax.Array]:
        """The actor update only: alpha comes from the observations, nothing tunes it."""
        actor_state, qf_state, actor_loss_value, key, _ = cls.update_actor(
            actor_state, qf_state, ent_coef_state, observations, key
        )
        return actor_state, qf_state, ent_coef_state, actor_loss_value, jnp.array(0.0), key
