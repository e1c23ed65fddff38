"""Errors that reach the user as one clear line instead of a traceback."""


class SeidrError(Exception):
    """Bad input or an unusable environment: the message says what is wrong and how to fix it."""
