"""What the environment needs from the operating system, checked (and installed where possible) by make.

nerfstudio imports open3d to read point clouds (nerfstudio-data's ``sparse_pc.ply``) and at the top of
``ns-export``; open3d's wheel links system libraries (libusb-1.0 among them) that a fresh Debian or
Ubuntu machine may not have. Each module below is imported in a fresh interpreter; when the import fails
for a missing shared library, the library's package is installed with apt-get if this runs as root with
apt-get present (and SYSTEM_INSTALL is not "no"), otherwise the check stops with one line naming the
package and the command that installs it.

    python tools/check_system.py        # exit 0: everything imports; 1: one "error:" line on stderr
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Optional

MODULES = {"open3d": "nerfstudio reads point clouds and exports with it"}
# Debian/Ubuntu package of each shared library the wheels above are known to need from the system.
PACKAGES = {
    "libusb-1.0.so.0": "libusb-1.0-0",
    "libgomp.so.1": "libgomp1",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libX11.so.6": "libx11-6",
    "libXext.so.6": "libxext6",
    "libXrender.so.1": "libxrender1",
    "libglib-2.0.so.0": "libglib2.0-0",
}
MISSING_LIBRARY = re.compile(r"([\w.+-]+\.so[\w.]*): cannot open shared object file")


def import_error(module: str) -> Optional[str]:
    """The last line of the error importing ``module`` in a fresh interpreter, or None if it imports."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def can_install() -> bool:
    """apt-get is here, we are root, and the caller did not forbid installing."""
    return (
        os.environ.get("SYSTEM_INSTALL", "yes") != "no" and shutil.which("apt-get") is not None and os.geteuid() == 0
    )


def apt_install(package: str) -> bool:
    """Install one Debian package (refreshing the package lists once if it is not found)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    print(f"installing the system package {package} (apt-get)", flush=True)
    if subprocess.run(command, env=env, capture_output=True).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    return subprocess.run(command, env=env, capture_output=True).returncode == 0


def fail(message: str) -> "int":
    print(f"error: {message}", file=sys.stderr)
    return 1


def main() -> int:
    installed = set()
    for module, why in MODULES.items():
        while (error := import_error(module)) is not None:
            missing = MISSING_LIBRARY.search(error)
            if missing is None:
                return fail(f"the Python module {module} ({why}) does not import: {error}")
            library = missing.group(1)
            package = PACKAGES.get(library)
            if package is None:
                return fail(f"{module} ({why}) needs the system library {library}: install the package that provides it")
            if package in installed:
                return fail(f"{package} is installed, yet {module} ({why}) still cannot load {library}: {error}")
            if not can_install():
                return fail(
                    f"{module} ({why}) needs the system library {library}: "
                    f"install it with `sudo apt-get install {package}` (Debian/Ubuntu), then run make again"
                )
            installed.add(package)
            if not apt_install(package):
                return fail(f"apt-get could not install {package} (needed by {module} for {library}): install it by hand")
    return 0


if __name__ == "__main__":
    sys.exit(main())
