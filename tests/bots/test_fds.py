"""``bots.fds.prepare``, each case in a fresh interpreter: it changes the process' limits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs Linux's /proc"
)


def run(body: str) -> str:
    """``body`` after a soft limit of 128 open files; what it printed (stderr: the logs)."""
    script = textwrap.dedent(
        """
        import logging, os, re, resource
        from bots import fds
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        def slots():
            status = open("/proc/self/status", encoding="utf-8").read()
            return int(re.search(r"^FDSize:\\s+(\\d+)", status, re.M)[1])
        def soft():
            return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        """
    ) + textwrap.dedent(body)
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_the_soft_limit_is_raised_and_the_table_grown_ahead():
    out = run(
        """
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 4096))
        print(slots() < 1000, fds.prepare(1000), soft(), slots() >= 1000 + fds.HEADROOM)
        """
    )
    assert out.split()[:4] == ["True", "1512", "1512", "True"]
    assert "WARNING" not in out


def test_a_hard_limit_below_the_need_is_used_in_full_and_said():
    out = run(
        """
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 600))
        print(fds.prepare(1000), soft(), slots() >= 600)
        """
    )
    assert out.split()[:3] == ["600", "600", "True"]
    assert "open files are limited to 600" in out
    assert "ulimit -n" in out


def test_no_open_file_is_closed_or_moved():
    """``dup2`` onto the highest number would close a file open there; ``F_DUPFD`` does not."""
    out = run(
        """
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, 4096))
        mine = os.open(os.devnull, os.O_RDONLY)
        os.dup2(mine, 1000 + fds.HEADROOM - 1)
        before = [n for n in range(2048) if os.path.exists(f"/proc/self/fd/{n}")]
        fds.prepare(1000)
        after = [n for n in range(2048) if os.path.exists(f"/proc/self/fd/{n}")]
        print(before == after, os.fstat(1000 + fds.HEADROOM - 1).st_ino == os.fstat(mine).st_ino)
        """
    )
    assert out.split()[:2] == ["True", "True"]
