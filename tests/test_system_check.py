"""The Makefile's system check (tools/check_system.py): a missing system library stops make with one line."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or not (VENV / ".deps-installed").is_file(),
    reason="needs make and the Makefile's environment",
)


def make_system(tmp_path: Path, stub_source: str) -> subprocess.CompletedProcess:
    """``make system`` with an ``open3d`` stub first on the path; installing forbidden."""
    stub = tmp_path / "stub" / "open3d"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(stub_source)
    env = dict(os.environ, PYTHONPATH=str(stub.parent), SYSTEM_INSTALL="no")
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), "system", f"VENV={VENV}"], env=env, capture_output=True, text=True, timeout=120
    )


def our_lines(result: subprocess.CompletedProcess):
    """Output lines other than make's own trailer ("make: *** [...] Error 1")."""
    return [line for line in (result.stdout + result.stderr).splitlines() if line and not line.startswith("make")]


def test_a_missing_shared_library_names_the_package_and_the_command(tmp_path):
    result = make_system(tmp_path, 'raise ImportError("libusb-1.0.so.0: cannot open shared object file: No such file")')
    assert result.returncode != 0
    assert our_lines(result) == [
        "error: open3d (nerfstudio reads point clouds and exports with it) needs the system library libusb-1.0.so.0: "
        "install it with `sudo apt-get install libusb-1.0-0` (Debian/Ubuntu), then run make again"
    ]


def test_another_import_failure_is_one_line_too(tmp_path):
    result = make_system(tmp_path, 'raise ImportError("numpy.core.multiarray failed to import")')
    assert result.returncode != 0
    lines = our_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: the Python module open3d") and "multiarray" in lines[0]


def test_passes_when_the_module_imports(tmp_path):
    result = make_system(tmp_path, "")
    assert result.returncode == 0 and our_lines(result) == []
