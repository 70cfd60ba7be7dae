"""Gymnasium environments of aligngym; importing this module registers their ids."""

from aligngym.envs import mujoco_log
from aligngym.envs.registration import register_envs

register_envs()
mujoco_log.install()  # no MUJOCO_LOG.TXT, no known deprecation notices
