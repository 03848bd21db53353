"""One exception family for the pack.

Messages name the input, what was expected, what was found and what to do, so a
ComfyUI user reading the red box knows which socket or file to fix.
"""


class MagicInfiniteError(Exception):
    """Base class of every error the pack raises on purpose."""


class InputError(MagicInfiniteError, ValueError):
    """A value given by the user (a node input, an argument) is not acceptable."""


class CheckpointError(MagicInfiniteError):
    """A model file cannot be read, is not safetensors, or has an unknown or broken layout."""


class Interrupted(MagicInfiniteError):
    """The user stopped a run (Ctrl-C on the command line); the message says what was kept and how to
    continue."""
