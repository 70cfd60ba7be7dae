"""MuJoCo is quiet under aligngym: no MUJOCO_LOG.TXT, no settotalmass notice, other warnings still shown."""

from __future__ import annotations

import subprocess
import sys

import pytest

_SCRIPT = """
import sys
{first}
imported_early = "mujoco" in sys.modules
import gymnasium as gym
import mujoco
gym.make("HalfCheetah-v5").reset(seed=0)  # Gymnasium's half_cheetah.xml uses settotalmass
model = mujoco.MjModel.from_xml_string(
    '<mujoco><worldbody><body><freejoint/><geom size="1"/></body></worldbody></mujoco>'
)
data = mujoco.MjData(model)
data.qpos[0] = float("nan")
mujoco.mj_checkPos(model, data)  # a real warning: must still reach the user
print("mujoco imported before use:", imported_early)
"""


@pytest.mark.parametrize("mujoco_first", [False, True], ids=["aligngym-first", "mujoco-first"])
def test_mujoco_quiet_without_log_file(tmp_path, mujoco_first):
    first = "import mujoco\nimport aligngym" if mujoco_first else "import aligngym"
    script = _SCRIPT.format(first=first)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert "settotalmass" not in result.stderr + result.stdout
    assert "Nan, Inf or huge value in QPOS" in result.stderr
    if not mujoco_first:  # registering the ids does not import the simulator
        assert "mujoco imported before use: False" in result.stdout
