"""The post, the glossary and the FAQ map: complete, linked, and pointing at real files."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
POST_TERMS = ["多模态大模型", "微调", "图像描述", "语音识别", "机器翻译", "跨模态融合层", "权重系数",
              "多模态表示", "跨模态融合", "跨模态学习", "对齐", "对抗", "自监督", "数据预处理",
              "数据清洗", "数据扩展", "数据归一化", "卷积神经网络", "循环神经网络",
              "循环卷积神经网络", "长短期记忆网络", "加权求和", "乘法", "卷积"]


def test_the_glossary_covers_every_term_of_the_post():
    seed = ROOT.parent / "shared" / "seed"
    text = (DOCS / "glossary.md").read_text()
    missing = [term for term in POST_TERMS if term not in text]
    assert not missing, f"glossary lacks {missing}"
    if seed.is_dir():  # the terms are the post's own words
        post = "".join(p.read_text() for p in seed.glob("*.txt"))
        assert [t for t in POST_TERMS if t not in post] == []


def test_every_glossary_row_links_a_chapter():
    rows = [line for line in (DOCS / "glossary.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| English") and "---" not in line]
    assert len(rows) >= len(POST_TERMS) - 5
    assert all("](../notebooks/" in row for row in rows), [r for r in rows if "](../" not in r]


@pytest.mark.parametrize("doc", ["glossary.md", "post.md"])
def test_every_link_points_at_a_file_of_the_repository(doc):
    text = (DOCS / doc).read_text()
    links = re.findall(r"\]\((?!https?:)([^)#]+)\)", text)
    assert links
    broken = [link for link in links if not (DOCS / link).resolve().exists()]
    assert not broken, f"{doc} links to missing files: {broken}"


def test_the_faq_answers_the_posts_three_questions_with_chapters():
    text = (DOCS / "post.md").read_text()
    for question in ["多模态大模型的主要应用场景有哪些", "多模态大模型的主要技术难点有哪些",
                     "如何实现多模态大模型的微调"]:
        assert question in text
        answer = text.rsplit(question, 1)[1].split("\n\n", 1)[0]
        assert "../notebooks/" in answer, f"the answer to {question} links no chapter"


def test_readme_and_chapter_00_name_the_post_and_link_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/post.md)" in readme and "(docs/glossary.md)" in readme
    chapter = (ROOT / "notebooks" / "00_setup_and_data.py").read_text()
    assert "docs/post.md" in chapter and "多模态大模型" in chapter


def test_every_glossary_term_stands_in_a_chapter_and_every_chapter_links_the_glossary():
    rows = [line.split("|") for line in (DOCS / "glossary.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| English") and "---" not in line]
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    text = "".join(p.read_text() for p in chapters)
    # the Chinese column's own term, before any remark in brackets
    missing = [row[2].strip().split(" (")[0] for row in rows
               if row[2].strip().split(" (")[0] not in text]
    assert not missing, f"the glossary promises these terms in a chapter: {missing}"
    unlinked = [p.name for p in chapters if "](../docs/glossary.md)" not in p.read_text()]
    assert not unlinked, f"chapters without a link to the glossary: {unlinked}"


def test_the_readme_module_table_names_every_module_of_the_package_and_no_other():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## The helper package", 1)[1].split("\n### ", 1)[0]
    package = ROOT / "mmcourse"
    modules = {".".join(p.relative_to(package).with_suffix("").parts)
               for p in package.rglob("*.py") if p.name != "__init__.py"}
    named = set(re.findall(r"`([a-z_0-9]+(?:\.[a-z_0-9]+)?)`", table))
    assert len(modules) > 60
    assert sorted(modules - named) == [], "modules the README's table leaves out"
    layers = {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines()
            if line.startswith("| `")]
    assert set(rows) == layers, "the table's first column names every layer"
    dotted = {n for n in named if "." in n and n.split(".")[0] in layers}
    assert sorted(dotted - modules) == [], "the table names modules that do not exist"
