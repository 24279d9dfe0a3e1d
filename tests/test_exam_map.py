"""docs/EXAM_MAP.md against the step scripts and the exam guides (fast, offline).

1. every numbered step script has a section in the map naming its file stem;
2. every task number a step's docstring cites ("Exam task statements:") appears in that
   step's section of the map;
3. every task number the map cites exists in the exam guides, with the guide's wording
   where the map quotes a title.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAM_MAP = ROOT / "docs" / "EXAM_MAP.md"
STEPS = sorted((ROOT / "lab_scripts").glob("[0-9][0-9]_*.py"))

# Task statements transcribed from "AWS Certified Machine Learning Engineer - Associate
# (MLA-C01) Exam Guide", Content outline, Domains 1-4 (trailing periods dropped).
MLA_C01 = {
    "1.1": "Ingest and store data",
    "1.2": "Transform data and perform feature engineering",
    "1.3": "Ensure data integrity and prepare data for modeling",
    "2.1": "Choose a modeling approach",
    "2.2": "Train and refine models",
    "2.3": "Analyze model performance",
    "3.1": "Select deployment infrastructure based on existing architecture and requirements",
    "3.2": "Create and script infrastructure based on existing architecture and requirements",
    "3.3": "Use automated orchestration tools to set up continuous integration and continuous delivery (CI/CD) pipelines",
    "4.1": "Monitor model inference",
    "4.2": "Monitor and optimize infrastructure and costs",
    "4.3": "Secure AWS resources",
}
# Task statements transcribed from "AWS Certified Machine Learning - Specialty (MLS-C01)
# Exam Guide", Exam content, Domains 1-4 (trailing periods dropped).
MLS_C01 = {
    "1.1": "Create data repositories for ML",
    "1.2": "Identify and implement a data ingestion solution",
    "1.3": "Identify and implement a data transformation solution",
    "2.1": "Sanitize and prepare data for modeling",
    "2.2": "Perform feature engineering",
    "2.3": "Analyze and visualize data for ML",
    "3.1": "Frame business problems as ML problems",
    "3.2": "Select the appropriate model(s) for a given ML problem",
    "3.3": "Train ML models",
    "3.4": "Perform hyperparameter optimization",
    "3.5": "Evaluate ML models",
    "4.1": "Build ML solutions for performance, availability, scalability, resiliency, and fault tolerance",
    "4.2": "Recommend and implement the appropriate ML services and features for a given problem",
    "4.3": "Apply basic AWS security practices to ML solutions",
    "4.4": "Deploy and operationalize ML solutions",
}
VALID = {"MLA-C01": MLA_C01, "MLS-C01": MLS_C01}

# "MLA-C01 4.3", "MLS-C01 Task 2.2", "MLA-C01 Task 1.2: Transform data ..." in the map.
MAP_CITATION = re.compile(r"\b(MLA-C01|MLS-C01)(?:\s+Task)?\s+(\d+\.\d+)(?::[ \t]*([^\n]*))?")


def map_text() -> str:
    return EXAM_MAP.read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    """'## ' heading -> the heading and body up to the next '## ' heading."""
    parts = re.split(r"(?m)^(?=## )", text)
    return {part.splitlines()[0]: part for part in parts if part.startswith("## ")}


def section_for(stem: str) -> str:
    matches = [body for heading, body in sections(map_text()).items() if stem in heading]
    assert len(matches) == 1, f"docs/EXAM_MAP.md needs exactly one '## ' section naming {stem}, found {len(matches)}"
    return matches[0]


def map_citations(text: str) -> set[tuple[str, str]]:
    return {(exam, number) for exam, number, _ in MAP_CITATION.findall(text)}


def docstring_citations(path: Path) -> set[tuple[str, str]]:
    """Task numbers in the docstring's "Exam task statements:" paragraph. A bare number
    belongs to the exam named last ("MLA-C01 1.2 (...), 1.3 (...)"); parenthesised
    glosses are dropped first."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    _, found, paragraph = doc.partition("Exam task statements:")
    if not found:
        return set()
    paragraph = paragraph.split("\n\n")[0]
    while re.search(r"\([^()]*\)", paragraph):
        paragraph = re.sub(r"\([^()]*\)", " ", paragraph)
    cited, exam = set(), None
    for token in re.findall(r"MLA-C01|MLS-C01|\d+\.\d+", paragraph):
        if token in VALID:
            exam = token
        else:
            assert exam, f"{path.name}: task {token} cited before any exam code"
            cited.add((exam, token))
    return cited


def test_there_are_steps_to_map():
    assert STEPS, "no lab_scripts/NN_*.py found"


@pytest.mark.parametrize("step", STEPS, ids=lambda p: p.stem)
def test_every_step_has_a_section(step):
    section_for(step.stem)


@pytest.mark.parametrize("step", STEPS, ids=lambda p: p.stem)
def test_docstring_citations_appear_in_the_steps_section(step):
    cited = docstring_citations(step)
    missing = cited - map_citations(section_for(step.stem))
    assert not missing, f"{step.stem} docstring cites {sorted(missing)}, absent from its EXAM_MAP.md section"


@pytest.mark.parametrize("step", STEPS, ids=lambda p: p.stem)
def test_docstring_citations_exist_in_the_guides(step):
    unknown = {(exam, number) for exam, number in docstring_citations(step) if number not in VALID[exam]}
    assert not unknown, f"{step.stem} docstring cites task statements that are not in the guides: {sorted(unknown)}"


def test_every_map_citation_exists_in_the_guides():
    text = map_text()
    cited = MAP_CITATION.findall(text)
    assert cited, "docs/EXAM_MAP.md cites no task statements"
    for exam, number, title in cited:
        assert number in VALID[exam], f"EXAM_MAP.md cites {exam} {number}, which is not in the {exam} exam guide"
        if title.strip():
            assert title.strip().startswith(VALID[exam][number]), (
                f"EXAM_MAP.md: {exam} Task {number} is '{VALID[exam][number]}' in the guide, not '{title.strip()}'"
            )


def test_summary_table_numbers_exist_and_are_cited_in_their_sections():
    rows = re.findall(r"(?m)^\|\s*(\d\d_\w+)\s*\|([^|]*)\|([^|]*)\|\s*$", map_text())
    assert rows, "docs/EXAM_MAP.md has no step | MLA-C01 | MLS-C01 table"
    for stem, mla, mls in rows:
        in_section = map_citations(section_for(stem))
        for exam, cell in (("MLA-C01", mla), ("MLS-C01", mls)):
            for number in re.findall(r"\d+\.\d+", cell):
                assert number in VALID[exam], f"table row {stem}: {exam} {number} is not in the guide"
                assert (exam, number) in in_section, f"table row {stem}: {exam} {number} is not cited in its section"
    stems_in_table = {stem for stem, _, _ in rows}
    assert {step.stem for step in STEPS} <= stems_in_table, "a step script is missing from the summary table"


# "Skills in:" lines per task statement in the MLA-C01 guide's content outline (70 in all).
MLA_C01_SKILLS = {"1.1": 6, "1.2": 3, "1.3": 4, "2.1": 5, "2.2": 9, "2.3": 6, "3.1": 6, "3.2": 6, "3.3": 6, "4.1": 4, "4.2": 10, "4.3": 5}
COVERAGE_ROW = re.compile(r"^\| (\d\.\d) \| ([^|]+) \| (covered|partly|not|[^|]*) \|\s*([^|]*?)\s*\|$")


def test_the_skills_coverage_table_has_every_mla_c01_skill_once_and_says_how_far():
    section = EXAM_MAP.read_text().split("## MLA-C01 skills coverage", 1)[1]
    rows = [COVERAGE_ROW.match(line) for line in section.splitlines() if re.match(r"^\| \d\.\d \|", line)]
    assert all(rows), "every row: task | skill | coverage | where"
    per_task = {task: sum(1 for row in rows if row.group(1) == task) for task in MLA_C01_SKILLS}
    assert per_task == MLA_C01_SKILLS and sum(per_task.values()) == 70
    assert len({row.group(2).strip() for row in rows}) == 70  # no skill twice
    status = [row.group(3) for row in rows]
    assert set(status) <= {"covered", "partly", "not"}
    assert all(row.group(4).strip() for row in rows if row.group(3) != "not"), "covered and partly say where"
    counts = re.search(r"Counts: (\d+) covered, (\d+) partly, (\d+) not\.", section)
    assert counts and tuple(map(int, counts.groups())) == (status.count("covered"), status.count("partly"), status.count("not"))
