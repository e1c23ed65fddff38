"""Errors that reach the user as one clear line instead of a traceback."""


class SeidrError(Exception):
    """Bad input or an unusable environment: the message says what is wrong and how to fix it."""


class SandboxBroken(SeidrError):
    """The sandbox, interpreter or compiler failed before a program ran: the machine is at
    fault, so nothing may be scored as the program's failure."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable  # a failed start may be load; a stated reason will not change
