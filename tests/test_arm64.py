"""The runtime on aarch64 (Raspberry Pi OS 64-bit = Debian bookworm arm64) under qemu-user, against x86_64.

Runs tests/arm64/run.sh (see its header): the wheel built from this tree and the aarch64 wheels of its
dependencies, in a cached bookworm arm64 userland, compared with the same checks run natively. A cold cache
(first run: apt-get install, debootstrap, aarch64 wheels) is not a reason to skip; only a machine that cannot
run it at all is.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "tests" / "arm64" / "run.sh"
TIMEOUT_S = 15 * 60


def _cannot_run() -> str | None:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"needs an x86_64 Linux host to emulate aarch64 on (this is {sys.platform}/{platform.machine()})"
    if os.geteuid() != 0:
        return "needs root: apt-get installs qemu-user-static and debootstrap"
    missing = [pkg for tool, pkg in (("qemu-aarch64-static", "qemu-user-static"), ("debootstrap", "debootstrap"))
               if shutil.which(tool) is None]
    if missing and shutil.which("apt-get") is None:
        return f"{' and '.join(missing)} not installed and no apt-get to install them"
    return None


def _tail(text: str, n: int = 80) -> str:
    return "\n".join(text.splitlines()[-n:])


def test_arm64_runtime_matches_x86():
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "EDGE_EMOTION_X86_PYTHON": sys.executable}
    proc = subprocess.Popen(["bash", str(RUN_SH)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # run.sh and the qemu processes it started
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"tests/arm64/run.sh did not finish in {TIMEOUT_S // 60} min; its output ends with:\n{_tail(out)}")
    print(out)
    assert proc.returncode == 0, f"tests/arm64/run.sh exited with {proc.returncode}; its output ends with:\n{_tail(out)}"
