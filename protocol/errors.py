"""Errors meant for people: one line naming the file (and line) and what to fix."""


class BenchmarkError(Exception):
    """A problem with the user's input or setup. The CLI prints it as one line and exits 2."""


class InputError(BenchmarkError):
    """Bad input data; raised before any training so nothing is written under results/."""

    def __init__(self, path, message, line=None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


def brief(exc):
    """An exception as one short line (for a log line that says what was unreadable)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def did_you_mean(name, choices):
    import difflib
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind, name, choices):
    """The registry error: names the valid choices, suggests the closest."""
    return BenchmarkError(
        f"unknown {kind} '{name}'{did_you_mean(name, choices)}; choose one of: "
        + ", ".join(sorted(choices)))
