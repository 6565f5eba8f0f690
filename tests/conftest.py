import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


@pytest.fixture
def cli_env():
    """Environment for subprocesses: the repository importable (torchdevice_migrate, runtime_shim)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("TORCHDEVICE_DEVICE", None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_cli(args, cwd=None, env=None, timeout=120):
    import subprocess

    return subprocess.run([sys.executable, "-m", "torchdevice_migrate", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
