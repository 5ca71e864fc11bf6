"""Fault drivers for the edge agent: `FaultHooks` that stall at a point, and a runner that starts
the real agent CLI with them (what the SIGKILL tests kill at exactly that point)."""

from __future__ import annotations

import sys
import time

from edge_agent.hooks import FaultHooks


class Stall(FaultHooks):
    """Print "STALL <point>" and sleep at `point` ("encode": mid-encode, "upload": between a clip
    and its sidecar), so a test can kill the process right there."""

    def __init__(self, point: str, seconds: float = 3600.0) -> None:
        if point not in ("encode", "upload"):
            raise ValueError(f"unknown stall point {point!r}")
        self.point, self.seconds = point, seconds

    def _stall(self, point: str) -> None:
        if point == self.point:
            print(f"STALL {point}", flush=True)
            time.sleep(self.seconds)

    def mid_encode(self) -> None:
        self._stall("encode")

    def between_clip_and_sidecar(self) -> None:
        self._stall("upload")


def main(argv: list[str]) -> int:
    """python -m tests.support.faults <point> <edge-agent CLI arguments...>"""
    from edge_agent.cli import main as agent_main

    return agent_main(argv[1:], hooks=Stall(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
