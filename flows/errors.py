"""What a flow can refuse, in words a person can act on."""

from __future__ import annotations


class FlowError(Exception):
    """Base: the message is safe to show the person who asked (no concern content)."""


class NotAllowed(FlowError):
    pass


class NotFound(FlowError):
    pass


class NotInDirectory(FlowError):
    pass


class Conflict(FlowError):
    pass


class FormErrors(FlowError):
    """Per-field problems, each saying how to fix it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
