"""Errors of the Learner; each message says what is wrong and with which numbers."""

from __future__ import annotations


class LearnerError(Exception):
    """Base class of every Learner error."""


class DatasetError(LearnerError):
    """A dataset (version) cannot be trained on: empty, one class, unknown SKUs, missing files."""


class RegistryError(LearnerError):
    """The model registry is missing an entry or a pointer is inconsistent."""
