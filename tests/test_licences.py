"""Licences and citation: the files exist, say what they license, and agree with pyproject."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CFF_REQUIRED = ["cff-version", "message", "title", "authors"]


def test_the_code_is_mit_licensed():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert re.search(r"Copyright \(c\) 20\d\d The mmcourse authors", text)
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text


def test_the_text_and_figures_are_cc_by_4():
    text = (ROOT / "LICENSE-CONTENT").read_text()
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in text
    assert "Creative Commons Attribution 4.0 International" in text
    # the legal code itself, all eight sections
    for section in range(1, 9):
        assert f"Section {section} – " in text, f"section {section} of the legal code"


def test_pyproject_names_both_licences_and_ships_both_files():
    expression = PROJECT["license"]
    assert set(re.split(r"\s+AND\s+", expression)) == {"MIT", "CC-BY-4.0"}
    assert sorted(PROJECT["license-files"]) == ["LICENSE", "LICENSE-CONTENT"]
    assert all((ROOT / name).is_file() for name in PROJECT["license-files"])


def test_the_readme_has_a_licence_section_naming_both_files():
    readme = (ROOT / "README.md").read_text()
    assert "\n## Licence" in readme
    section = readme.split("\n## Licence", 1)[1].split("\n## ", 1)[0]
    for name in ["LICENSE", "LICENSE-CONTENT", "CITATION.cff"]:
        assert f"]({name})" in section, f"the Licence section links {name}"
    assert "MIT" in section and "CC BY 4.0" in section


def test_the_citation_file_is_cff_1_2_with_the_package_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    missing = [key for key in CFF_REQUIRED if not cff.get(key)]
    assert not missing, f"CITATION.cff lacks {missing}"
    assert cff["cff-version"] == "1.2.0"
    assert all(author.get("name") or author.get("family-names") for author in cff["authors"])
    assert str(cff["version"]) == PROJECT["version"], "CITATION.cff and pyproject disagree"
    assert set(cff["license"]) == set(re.split(r"\s+AND\s+", PROJECT["license"]))
    assert cff["repository-code"] == PROJECT["urls"]["Repository"]
