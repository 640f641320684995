"""One error type for bad user input, and the CLI wrapper that turns it into one line + exit code.

Every tool raises :class:`InputError` with the offending path and the problem; ``run_cli`` prints
``error: <path>: <problem>`` on stderr and exits with status 2. Programming errors still show a traceback.
"""
from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence


class InputError(Exception):
    """Bad input from the user: a file that is missing, unreadable or inconsistent."""

    def __init__(self, path, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


EXIT_BAD_INPUT = 2


def run_cli(main: Callable[[Optional[Sequence[str]]], int],
            argv: Optional[Sequence[str]] = None) -> None:
    """Run ``main(argv)``; bad input becomes a one-line message and exit status 2."""
    try:
        code = main(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
