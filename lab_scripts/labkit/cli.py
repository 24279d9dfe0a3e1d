"""The steps' command line: `--help` is the step's whole docstring (what you do, what you
see, where to look, the exam task statements) and every option with its default."""
from __future__ import annotations

import argparse


class _StepHelp(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written (its line breaks kept), each option's default appended."""


def step_parser(docstring: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=docstring, formatter_class=_StepHelp)
