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
