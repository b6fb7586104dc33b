"""The one exception type the command line turns into a one-line message."""


class UserError(Exception):
    """A problem with the user's input, files or environment (not a bug)."""
