"""The one exception type that means "the user gave us something bad".

The CLI turns a :class:`UserError` into one line on stderr and exit code 2; every other
exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad input (file, option, parameter): the message names it and says what to do."""
