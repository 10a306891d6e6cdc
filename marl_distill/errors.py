"""Errors a user can fix: the CLI turns them into exit code 2 and one line on stderr."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix, in one line."""


class RunFailed(Exception):
    """A run stopped by something outside the user's input (a worker process killed, out of memory): the CLI says
    it in one line with exit code 1, and how to continue where the command can (``--resume`` keeps what finished)."""


class DiskFull(RunFailed):
    """A write found no space left on the disk: one line naming the folder, the free space and how to go on (exit
    code 1, like any run stopped by its machine)."""
