"""One exception type for every error a user can fix: entry points print its message as one line."""


class FTVSRError(Exception):
    """Bad input, a missing file, invalid params: the message says what and where."""
