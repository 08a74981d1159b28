"""The one exception type for bad input: its message is a single sentence for the user."""


class UserError(Exception):
    """Bad input (a flag, a file, a checkpoint): the CLI prints the message and exits 2."""
