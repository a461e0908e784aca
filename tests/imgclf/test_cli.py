"""The CLI's wiring: one parser for every command, and only the chosen command's module loaded."""
from __future__ import annotations

import subprocess
import sys

import pytest

from imgclf.cli import COMMANDS

_LOADED = """
import sys
from imgclf.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


def _modules_loaded_by(*argv: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", _LOADED, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.splitlines()[-1].split())  # after the help text


@pytest.mark.parametrize("words, module", [(words, module) for words, module, _ in COMMANDS])
def test_a_commands_help_imports_that_command_and_no_other(words, module):
    loaded = _modules_loaded_by(*words, "--help")
    assert module in loaded
    assert not loaded & {other for _, other, _ in COMMANDS if other != module}


def test_the_top_level_help_imports_no_command():
    assert not _modules_loaded_by("--help") & {module for _, module, _ in COMMANDS}
