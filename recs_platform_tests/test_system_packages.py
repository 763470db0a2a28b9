"""`make test` installs the system packages its tests need, from one list, or says how."""

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "scripts" / "system-packages.sh"


def test_make_test_and_ci_share_the_one_list():
    makefile = (ROOT / "Makefile").read_text()
    prerequisites = re.search(r"^test:(.*)$", makefile, re.MULTILINE).group(1).split()
    assert prerequisites.index("system-packages") < prerequisites.index("lint")
    assert "bash scripts/system-packages.sh" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "apt-get" not in ci


def test_without_the_right_to_install_it_stops_with_the_command(tmp_path):
    # A user who is not root, has no sudo and none of the tools on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    result = subprocess.run(
        [shutil.which("bash"), str(SCRIPT)],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "sudo apt-get install -y chromium chromium-driver" in result.stderr
    assert "curl wrk" in result.stderr


def test_with_everything_present_it_does_nothing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("chromium", "chromedriver", "curl", "wrk"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    result = subprocess.run(
        [shutil.which("bash"), str(SCRIPT)],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        assert result.returncode == 1 and "postgresql" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "present" in result.stdout
