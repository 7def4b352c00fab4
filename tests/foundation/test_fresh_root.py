"""The README's two set-up commands install their Debian packages on a fresh machine.

The slow test runs ``scripts/fresh-root``: a fresh Debian 12 minbase root, the committed repo
cloned into it, ``./scripts/setup-run`` and ``./scripts/setup-test`` run inside under CI=true.
The fast tests check the scripts' apt handling with stub ``dpkg``/``apt-get`` commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, require

SCRIPTS = REPO_ROOT / "scripts"


def apt_packages(script: str) -> list[str]:
    """The script's APT_PACKAGES array, as bash itself reads it."""
    text = (SCRIPTS / script).read_text()
    start = text.index("APT_PACKAGES=(")
    block = text[start:text.index(")", start) + 1]
    out = subprocess.run(["bash", "-c", block + '\nprintf "%s\\n" "${APT_PACKAGES[@]}"'],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_fresh_root_help_and_bad_argument():
    result = subprocess.run([SCRIPTS / "fresh-root", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "debootstrap" in result.stdout and "--ref" in result.stdout
    bad = subprocess.run([SCRIPTS / "fresh-root", "--no-such-option"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


def test_setup_scripts_name_the_packages_a_fresh_root_lacks():
    run, test = apt_packages("setup-run"), apt_packages("setup-test")
    assert {"python3", "python3-venv"} <= set(run), run
    assert {"python3", "python3-venv", "libclang-rt-14-dev", "clang", "make"} <= set(test), test


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.mark.parametrize("installed", [True, False], ids=["all-installed", "none-installed"])
@pytest.mark.parametrize("script", ["setup-run", "setup-test"])
def test_setup_script_calls_apt_only_for_missing_packages(tmp_path, script, installed):
    # A copy of the script in an empty tree; the stub python stops it right after apt.
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPTS / script, tmp_path / "scripts" / script)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "apt.log"
    status = "install ok installed" if installed else "deinstall ok config-files"
    _stub(stubs, "dpkg", f'echo "Package: $2"; echo "Status: {status}"')
    _stub(stubs, "apt-get", f'echo "$DEBIAN_FRONTEND $*" >> {log}')
    _stub(stubs, "sudo", 'exec "$@"')
    _stub(stubs, "stub-python", "exit 7")
    env = {k: v for k, v in os.environ.items() if k != "DEBIAN_FRONTEND"}
    env.update(PATH=f"{stubs}:{os.environ['PATH']}", PYTHON=str(stubs / "stub-python"))
    result = subprocess.run(["bash", tmp_path / "scripts" / script], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 7, result.stdout + result.stderr
    if installed:
        assert not log.exists(), log.read_text()
        return
    calls = log.read_text().splitlines()
    assert calls[0].split() == ["update", "-qq"]
    install = calls[1].split()
    assert install[:5] == ["noninteractive", "install", "-y", "-qq", "--no-install-recommends"]
    assert install[5:] == apt_packages(script)


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
def test_both_setup_commands_pass_on_a_fresh_bookworm_root(tmp_path):
    require(os.geteuid() == 0, "fresh-root needs root (debootstrap, mount, chroot)")
    require(Path("/etc/debian_version").exists(), "fresh-root needs a Debian host")
    root = tmp_path / "root"
    result = subprocess.run([SCRIPTS / "fresh-root", "--dir", root], capture_output=True,
                            text=True, timeout=3 * 3600 - 60)
    summary = [line for line in result.stdout.splitlines() if line.startswith("fresh-root: setup-")]
    assert result.returncode == 0, "\n".join(summary) + "\n" + result.stdout[-4000:]
    assert any(line.startswith("fresh-root: setup-run   PASS") and "SIMULATED shown" in line
               for line in summary), summary
    assert any(line.startswith("fresh-root: setup-test  PASS") and " passed" in line
               for line in summary), summary
    assert not root.exists(), "the root was not cleaned up"
