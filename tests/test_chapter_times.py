"""The README's time per chapter is the table of benchmarks/cpu-times.tsv."""
import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMES = ROOT / "benchmarks" / "cpu-times.tsv"
GPU_TIMES = ROOT / "benchmarks" / "gpu-times.tsv"
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _rows(path: Path) -> dict[str, dict]:
    with path.open() as f:
        return {row["item"]: row for row in csv.DictReader(f, delimiter="\t")}


def _shown(seconds: str) -> str:
    """How the README shows a time in seconds: "46 s", "2206 s (37 min)"."""
    if not seconds.isdigit():
        return seconds
    value = int(seconds)
    return f"{value} s" if value < 120 else f"{value} s ({round(value / 60)} min)"


def _readme_table() -> dict[str, list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Time per chapter", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if re.match(r"\| \d\d ", line)]
    return {row[0]: row[1:] for row in rows}


def test_every_chapter_has_a_full_and_a_fast_time_with_a_note():
    rows = _rows(TIMES)
    for chapter in CHAPTERS:
        row = rows[chapter]
        for column in ["cpu_seconds", "fast_seconds"]:
            assert row[column].isdigit() or row[column] == "not measured", (chapter, column)
        assert row["fast_seconds"].isdigit(), f"{chapter}: fast mode not timed"
        assert row["note"] and row["fast_note"], chapter
        assert "MMCOURSE_FAST=1" in row["fast_note"] and "upper bound" in row["fast_note"]


def test_the_readme_table_shows_the_times_of_the_tsv():
    rows, table = _rows(TIMES), _readme_table()
    gpu = _rows(GPU_TIMES) if GPU_TIMES.exists() else {}
    assert sorted(table) == [c[:2] for c in CHAPTERS], "one row per chapter"
    for chapter in CHAPTERS:
        full, fast, on_gpu = table[chapter[:2]]
        assert full == _shown(rows[chapter]["cpu_seconds"]), chapter
        assert fast == _shown(rows[chapter]["fast_seconds"]), chapter
        assert on_gpu == _shown(gpu.get(chapter, {}).get("seconds", "not measured")), chapter


def test_shown_times():
    assert _shown("46") == "46 s"
    assert _shown("2206") == "2206 s (37 min)"
    assert _shown("not measured") == "not measured"
