"""Errors a user can fix: the CLI turns them into exit code 2 and one line on stderr."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix, in one line."""
