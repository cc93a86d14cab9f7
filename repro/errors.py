"""The one error type a user sees: a single line naming the problem and the fix (exit status 2)."""


class ReproError(Exception):
    """Bad input or a missing prerequisite. The CLI prints `repro: error: <message>` and exits 2."""

    exit_code = 2
