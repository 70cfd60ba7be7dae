"""Gymnasium environments of aligngym; importing this module registers their ids."""

from aligngym.envs.registration import register_envs

register_envs()
