"""The one exception type that means "the user gave us something bad".

The CLI turns a :class:`UserError` into one line on stderr and exit code 2; every other
exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad input (file, option, parameter): the message names it and says what to do."""

    def __str__(self) -> str:
        # One line, always: a file name with a newline (or another control character) is shown
        # escaped, so it can never split the message or pose as a traceback line.
        return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in super().__str__())


def pick_named(available: dict, names: list[str] | None, option: str, kind: str) -> list:
    """The values of ``available`` named in ``names``, in that order (all of them when ``names`` is
    empty); an unknown name is one :class:`UserError` naming ``option`` and listing what exists, e.g.
    ``--only: unknown figure fig9; available: fig3, fig4``."""
    if not names:
        return list(available.values())
    unknown = [name for name in names if name not in available]
    if unknown:
        raise UserError(f"{option}: unknown {kind} {', '.join(unknown)}; available: {', '.join(available) or 'none'}")
    return [available[name] for name in names]
