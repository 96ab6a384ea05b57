"""The bad-input suite's one entry point: `llmplat ...` as a person types it, run in-process (a traceback would
fail the test as an uncaught exception; the subprocess spot-checks in test_cli_inputs.py see the real script)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from llmplat_dagster.cli import main


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def llmplat(capsys) -> Callable[..., Outcome]:
    def run(*argv: str) -> Outcome:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err
        return Outcome(code, captured.out, captured.err)

    return run


def line_of(text: str, needle: str) -> int:
    """1-based line of `needle`'s first occurrence."""
    return text[: text.index(needle)].count("\n") + 1
