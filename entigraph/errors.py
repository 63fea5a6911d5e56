"""User-facing errors: the CLI prints these as one line, without a traceback."""


class EntigraphError(Exception):
    """A problem the user can fix (bad config, missing file, invalid input)."""


class ConfigError(EntigraphError):
    """An invalid or unknown setting."""


class InputError(EntigraphError):
    """A corpus or question file that cannot be read."""
