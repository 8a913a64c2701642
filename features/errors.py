"""Errors the command line turns into one clear sentence instead of a traceback."""


class UserInputError(Exception):
    """Bad input from a person (a missing folder, a malformed date, N = 0).

    The message is one complete sentence that says what is wrong and where.
    """
