"""The one exception type SpecGym raises for bad input: its message names the fix."""


class SpecGymError(ValueError):
    """Bad input or an unusable model/config; the message says what to do about it."""


# The fix for a local model directory with a missing or broken file (the message names the file)
MODEL_DIR_FIX = "rebuild it with python -m experiments.build_pair NAME --force, or delete it and fetch it again"
