"""`--help` of every step is its whole docstring and every option with its default, and never
runs the step (regression: steps 00 and 05 had no argparse; the others showed one line)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT, isolated_env, run_step

STEPS = sorted((ROOT / "lab_scripts").glob("[0-9][0-9]_*.py"))


def options_with_defaults(script: Path) -> dict[str, str]:
    """--option -> its default as argparse prints it, read from the script's add_argument calls."""
    found = {}
    for call in ast.walk(ast.parse(script.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_argument":
            keywords = {k.arg: k.value for k in call.keywords}
            if "default" in keywords and isinstance(keywords["default"], ast.Constant):
                found[call.args[0].value] = str(keywords["default"].value)
    return found


@pytest.mark.parametrize("script", STEPS, ids=lambda p: p.stem)
def test_help_is_the_whole_docstring_with_every_default(script, tmp_path):
    result = run_step(script.name, isolated_env(), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    flat = " ".join(result.stdout.split())
    docstring = ast.get_docstring(ast.parse(script.read_text()))
    for paragraph in docstring.split("\n\n"):
        assert " ".join(paragraph.split()) in flat, paragraph
    for option, default in options_with_defaults(script).items():
        assert f"{option}" in flat and f"(default: {default})" in flat, (option, default)
    assert "Exam task statements" in flat and "==" not in result.stdout  # the step itself did not run
