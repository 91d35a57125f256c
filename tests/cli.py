"""Run a command line's ``main(argv)`` in the test process, as a subprocess would run it."""

from __future__ import annotations

import subprocess
import sys
from typing import Callable


def run_cli(main: Callable[[list[str]], object], argv: list[str], capsys) -> subprocess.CompletedProcess:
    """(exit status, stdout, stderr) of ``main(argv)``. SystemExit is handled as the interpreter
    would: an int is the status, a message goes to stderr with status 1."""
    try:
        result = main(argv)
        status = result if isinstance(result, int) else 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        if isinstance(exit.code, str):
            print(exit.code, file=sys.stderr)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, status, captured.out, captured.err)
