"""The README is a quickstart that stays true (fast, offline): at most 200 lines, and every
repository path, `make` target, step script and step option it names exists; every link of
the README and of docs/*.md resolves (file and #anchor).

Each check is a function that returns what it found wrong, so the last tests can feed it a
README broken on purpose and see every kind of mistake reported.
"""
from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_LINES = 200

# Made by the set-up or a run, never in a checkout: a path under these is not checked.
GENERATED = {"build", "cdk.out", "node_modules"}
FILE_SUFFIXES = (".py", ".md", ".json", ".txt", ".ini", ".cfg", ".toml", ".yml", ".yaml")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
STEP = re.compile(r"lab_scripts/(?:\d\d_\w+|report)\.py")
OPTION = re.compile(r"(?<![\w-])--[a-zA-Z][\w-]*")
SHELL_BREAKS = {"&&", "||", "|", ";"}


def code_of(text: str) -> list[str]:
    """Every fenced block's lines and every inline code span, in order."""
    blocks = [line for block in FENCE.findall(text) for line in block.splitlines()]
    return blocks + INLINE.findall(FENCE.sub("", text))


def top_level_names() -> set[str]:
    return {p.name for p in ROOT.iterdir() if not p.name.startswith(".") and p.name not in GENERATED}


def path_candidates(text: str) -> set[str]:
    """Words of the code that name a repository path: starting with a top-level entry of the
    checkout, or ending like a source file. Placeholders, URLs, options and assignments are
    not paths; nor is anything under a generated or hidden directory."""
    tops = top_level_names()
    found = set()
    for code in code_of(text):
        for word in code.split():
            word = word.strip(",;:()[]'\"").rstrip(".")
            if not word or any(mark in word for mark in ("<", ">", "...", "=", "://", "$", "|")) or word.startswith("-"):
                continue
            first = word.split("/")[0]
            if first.startswith(".") or first in GENERATED or first.startswith("s3:"):
                continue
            if first in tops or word.endswith(FILE_SUFFIXES) and ("/" in word or word.count(".") == 1):
                found.add(word)
    return found


def missing_paths(text: str, root: Path = ROOT) -> list[str]:
    missing = []
    for word in sorted(path_candidates(text)):
        exists = any(root.glob(word.rstrip("/"))) if "*" in word else (root / word.rstrip("/")).exists()
        if not exists:
            missing.append(word)
    return missing


@lru_cache(maxsize=1)
def makefile_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"(?m)^([A-Za-z0-9][\w.-]*)\s*:(?!=)", text))


def make_targets_named(text: str) -> set[str]:
    """`make lab SIZE=20000` names lab; `make setup && source ...` names setup."""
    named = set()
    for code in code_of(text):
        words = re.split(r"(?:^|\s)#", code)[0].split()  # a shell comment names no target
        for i, word in enumerate(words):
            if word != "make":
                continue
            for after in words[i + 1:]:
                if after in SHELL_BREAKS or after.startswith("#"):
                    break
                if "=" not in after and not after.startswith("-") and not after.startswith("/"):
                    named.add(after.strip("`,;:()"))
    return named


def unknown_make_targets(text: str) -> list[str]:
    return sorted(make_targets_named(text) - makefile_targets())


def step_options(text: str) -> dict[str, set[str]]:
    """Step script -> the options written after it on the same line (a command, or a table
    row of that step), up to the next script named on the line."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        matches = list(STEP.finditer(line))
        for n, match in enumerate(matches):
            end = matches[n + 1].start() if n + 1 < len(matches) else len(line)
            found.setdefault(match.group(0), set()).update(OPTION.findall(line[match.end():end]))
    return found


@lru_cache(maxsize=None)
def accepted_options(script: str) -> frozenset[str]:
    """What the script's own argparse accepts: the options section of its `--help`
    (which never runs the step, tests/test_step_help.py)."""
    result = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{script} --help failed: {result.stderr[-500:]}"
    _, found, options = result.stdout.partition("\noptions:\n")
    assert found, f"{script} --help has no options section"
    return frozenset(OPTION.findall(options))


def step_problems(text: str) -> list[str]:
    named = step_options(text)
    problems = [f"{script} does not exist" for script in sorted(named) if not (ROOT / script).is_file()]
    to_ask = sorted(script for script, options in named.items() if options and (ROOT / script).is_file())
    with ThreadPoolExecutor(max(1, len(to_ask))) as pool:
        accepted = dict(zip(to_ask, pool.map(accepted_options, to_ask)))
    for script in to_ask:
        problems += [f"{script} has no option {option}" for option in sorted(named[script] - accepted[script])]
    return problems


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, code marks and punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {slug(h) for h in re.findall(r"(?m)^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", text))}


def broken_links(text: str, base: Path) -> list[str]:
    """Relative links of `text` (a file in `base`) whose file or #anchor does not exist."""
    broken = []
    for target in LINK.findall(FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (base / file_part).resolve()
        if file_part and not path.exists():
            broken.append(target)
        elif anchor and not file_part and anchor not in anchors(text):
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text(encoding="utf-8")):
            broken.append(target)
    return broken


def readme() -> str:
    return README.read_text(encoding="utf-8")


# --- the README and docs as they are -----------------------------------------------------


def test_the_readme_is_a_quickstart_of_at_most_200_lines():
    lines = len(readme().splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines: move reference material into docs/"


def test_the_sections_others_rely_on_are_there():
    """test_readme_by_hand replays the block under "### Offline, by hand"; the AWS commands
    and the "## Tests" part stay in the README."""
    text = readme()
    assert re.search(r"(?m)^### Offline, by hand\n\n```bash\n", text), "### Offline, by hand and its ```bash block"
    assert re.search(r"(?m)^### On your AWS account$", text)
    assert re.search(r"(?m)^## Tests$", text)


def test_every_repository_path_the_readme_names_exists():
    named = path_candidates(readme())
    assert {"lab_scripts/00_preflight.py", "lab_scripts/labkit/prices.json", "bench/results.json"} <= named, "the path finder sees the README's paths"
    assert missing_paths(readme()) == []


def test_every_make_target_the_readme_names_is_in_the_makefile():
    assert {"lab", "test"} <= make_targets_named(readme())
    assert unknown_make_targets(readme()) == []


def test_every_step_script_and_option_the_readme_names_exists():
    named = step_options(readme())
    assert len(named) >= 11 and "--audit-only" in named["lab_scripts/10_teardown.py"]
    assert step_problems(readme()) == []


def test_every_link_of_the_readme_and_the_docs_resolves():
    assert any("docs/" in link for link in LINK.findall(readme())), "the README links to docs/"
    problems = {"README.md": broken_links(readme(), ROOT)}
    problems.update({f"docs/{doc.name}": broken_links(doc.read_text(encoding="utf-8"), doc.parent) for doc in DOCS})
    assert {name: links for name, links in problems.items() if links} == {}


# --- the checks catch what they are for --------------------------------------------------

BROKEN = """# Broken on purpose

See [the steps](docs/steps.md), [gone](docs/no-such-page.md), [bad anchor](docs/steps.md#no-such-heading)
and [a heading here](#broken-on-purpose), [not here](#nowhere).

| 03 | `lab_scripts/03_train_model.py` | `--spot`, `--no-such-option` |
| 99 | `lab_scripts/99_no_such_step.py` | nothing |

```bash
make lab SIZE=20000
make no-such-target && echo done
.venv/bin/python lab_scripts/10_teardown.py --audit-only   # then --also-not-an-option
```

Read `localaws/no_such_module.py`, `processing/features.py` and `s3://<bucket>/labels/`.
"""


def test_the_checks_report_each_kind_of_mistake():
    assert missing_paths(BROKEN) == ["lab_scripts/99_no_such_step.py", "localaws/no_such_module.py"]
    assert unknown_make_targets(BROKEN) == ["no-such-target"]
    assert step_problems(BROKEN) == [
        "lab_scripts/99_no_such_step.py does not exist",
        "lab_scripts/03_train_model.py has no option --no-such-option",
        "lab_scripts/10_teardown.py has no option --also-not-an-option",
    ]
    assert broken_links(BROKEN, ROOT) == ["docs/no-such-page.md", "docs/steps.md#no-such-heading", "#nowhere"]
