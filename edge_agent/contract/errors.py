"""The one error type of the contract: it names the offending field and the reason."""

from __future__ import annotations


class ContractError(ValueError):
    """A document, id or key breaks the edge-cloud contract.

    `field` is a dotted path into the document ("frames.3.confidence") or the name of the id;
    `reason` says what is wrong in words a person can act on.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")
