"""The one exception type SpecGym raises for bad input: its message names the fix."""


class SpecGymError(ValueError):
    """Bad input or an unusable model/config; the message says what to do about it."""
