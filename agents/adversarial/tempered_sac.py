"""SAC whose entropy coefficient is read, per sample, from the observation (the QARL adversary).

SB3's SAC has one global ``ent_coef``. QARL's adversary instead solves a family of entropy-regularised
problems at once, one per temperature alpha, with alpha appended to its observation
(``aligngym.agents.adversarial.temperature.TemperatureObservation``). ``TemperedSAC`` therefore overrides
``train()`` only: the soft Bellman target uses alpha of the next observation and the actor loss alpha of
the current one, sample by sample; there is no entropy-coefficient optimiser.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F


class TemperedSAC(SAC):
    """SAC with a per-sample entropy coefficient alpha = ``observation[:, temperature_index]``.

    ``ent_coef`` must be left alone (it is fixed to 0 and unused); all other SAC arguments pass through.

    Example:
        >>> import gymnasium as gym
        >>> from aligngym.agents.adversarial.temperature import GammaTemperature, TemperatureObservation
        >>> env = TemperatureObservation(gym.make("Pendulum-v1"), GammaTemperature(50, 1000))
        >>> model = TemperedSAC("MlpPolicy", env, learning_starts=64, seed=0).learn(128)
    """

    def __init__(self, policy: Any, env: Any, temperature_index: int = -1, **kwargs: Any) -> None:
        ent_coef = kwargs.pop("ent_coef", 0.0)
        if ent_coef not in (0, 0.0):
            raise ValueError(
                f"TemperedSAC reads alpha from the observation; ent_coef must stay unset (got {ent_coef!r})"
            )
        self.temperature_index = temperature_index
        super().__init__(policy, env, ent_coef=0.0, **kwargs)

    def temperatures(self, observations: th.Tensor) -> th.Tensor:
        """Per-sample alpha as a (batch, 1) tensor, clipped at 0."""
        return observations[:, self.temperature_index].reshape(-1, 1).clamp(min=0.0)

    def entropy_terms(self, observations: th.Tensor, log_prob: th.Tensor) -> th.Tensor:
        """alpha_i * log pi(a_i | s_i) per sample: the term both the target and the actor loss use."""
        return self.temperatures(observations) * log_prob.reshape(-1, 1)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        alphas, actor_losses, critic_losses = [], [], []

        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            if self.use_sde:
                self.actor.reset_noise()
            actions_pi, log_prob = self.actor.action_log_prob(replay_data.observations)
            alphas.append(self.temperatures(replay_data.observations).mean().item())

            with th.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                next_q_values = next_q_values - self.entropy_terms(
                    replay_data.next_observations, next_log_prob
                )
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            current_q_values = self.critic(replay_data.observations, replay_data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            q_values_pi = th.cat(self.critic(replay_data.observations, actions_pi), dim=1)
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            actor_loss = (self.entropy_terms(replay_data.observations, log_prob) - min_qf_pi).mean()
            actor_losses.append(actor_loss.item())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(alphas))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
