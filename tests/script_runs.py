"""One way for tests to run a script in this process: ``run_script(main, argv)``."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence

from experiments import _cli


def run_script(main: Callable, argv: Sequence[str], capsys=None) -> tuple[int, str, str]:
    """``python -m experiments.NAME ARGV`` as ``_cli.run(main, argv)`` runs it: (exit status, stdout,
    stderr). The output is read from pytest's ``capsys`` when given, else captured here."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.ExitStack() as stack:
        if capsys is None:
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
        try:
            _cli.run(main, list(argv))
        except SystemExit as stop:
            code = stop.code
    if capsys is not None:
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return code, out.getvalue(), err.getvalue()
