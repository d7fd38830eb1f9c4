"""The tested version range: lower bounds pinned in constraints/lowest.txt, both ends run
by CI, the README's install section true to them, and PIP_ARGS reaching pip."""
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _lower_bounds() -> dict[str, Version]:
    bounds = {}
    for line in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]:
        req = Requirement(line)
        (spec,) = [s for s in req.specifier if s.operator == ">="]
        bounds[req.name.lower().replace("_", "-")] = Version(spec.version)
    return bounds


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][0-9A-Za-z.]*)", line).groups()
            pins[name.lower().replace("_", "-")] = Version(version)
    return pins


def test_the_lowest_constraints_pin_every_direct_dependency_at_its_lower_bound():
    bounds, pins = _lower_bounds(), _pins()
    assert len(bounds) > 25
    assert sorted(pins) == sorted(bounds), "constraints/lowest.txt names the direct dependencies"
    wrong = {name: (str(pins[name]), str(bounds[name])) for name in bounds
             if pins[name] != bounds[name]}
    assert not wrong, f"pinned vs lower bound: {wrong}"


def test_the_pytorch_trio_belongs_together():
    bounds = _lower_bounds()
    torch, vision, audio = bounds["torch"], bounds["torchvision"], bounds["torchaudio"]
    # torchvision 0.N pairs with torch 2.(N - 15); torchaudio shares torch's version
    assert (vision.major, vision.minor) == (0, torch.minor + 15), (torch, vision)
    assert (audio.major, audio.minor) == (torch.major, torch.minor), (torch, audio)


def _steps(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_ci_runs_the_unit_tests_on_the_lowest_versions_and_make_test_on_the_newest():
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())["jobs"]
    lowest = [job for job in jobs.values() if "-c constraints/lowest.txt" in _steps(job)]
    newest = [job for job in jobs.values() if "constraints/" not in _steps(job)]
    assert len(lowest) == 1 and len(newest) == 1, "one job at each end of the range"
    low = _steps(lowest[0])
    assert f"--extra-index-url {CPU_INDEX}" in low
    assert re.search(r"pytest .*\btests$", low, re.M), "the lowest job runs pytest tests"
    assert "mmcourse install-data" in low
    assert re.search(r"^make test\b", _steps(newest[0]), re.M)
    assert CPU_INDEX in newest[0]["env"]["PIP_ARGS"], "make test installs CPU-only PyTorch"
    for job in jobs.values():
        setup = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
        assert setup and setup[0]["with"]["python-version"] == PROJECT["requires-python"][2:]


def test_the_readme_states_the_tested_range_and_the_cpu_only_install():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Versions", 1)[1].split("\n#", 1)[0]
    bounds = _lower_bounds()
    for name in ["torch", "torchvision", "torchaudio", "numpy"]:
        assert f"{name} {bounds[name]}" in section, f"the README names {name}'s lower bound"
    assert "constraints/lowest.txt" in section and f"Python {PROJECT['requires-python'][2:]}" in section
    cpu = readme.split("### CPU-only PyTorch", 1)[1].split("\n#", 1)[0]
    assert f"--index-url {CPU_INDEX}" in cpu
    assert f'PIP_ARGS="--extra-index-url {CPU_INDEX}"' in cpu


def _make_n(*args: str, **variables: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PIP_ARGS", "MAKEFLAGS"}}
    env.update(variables)
    result = subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True)
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_pip_args_reach_the_pip_install_of_make_setup():
    option = f"--extra-index-url {CPU_INDEX}"
    lines = [line for line in _make_n("lab", f"PIP_ARGS={option}").splitlines()
             if "-m pip install" in line and '-e ".[dev]"' in line]
    assert len(lines) == 1 and option in lines[0], lines
    from_env = [line for line in _make_n("test", PIP_ARGS=option).splitlines()
                if "-m pip install" in line]
    assert len(from_env) == 1 and option in from_env[0], "PIP_ARGS from the environment"
    plain = [line for line in _make_n("lab").splitlines() if "-m pip install" in line]
    assert plain and all(CPU_INDEX not in line for line in plain)
