"""The demo's progress: which steps of which turn are finished, so an interrupted `make demo`
resumes where it stopped without redoing finished work. One JSON file, replaced atomically after
every finished step; it also pins the settings a run started with (a changed setting starts over)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class Progress:
    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = path
        self.state: dict[str, Any] = {"settings": settings, "turns": {}}
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("settings") == settings:
                self.state = old
        self.resumed = bool(self.state["turns"])

    def done(self, turn: int, step: str) -> bool:
        return step in self.state["turns"].get(str(turn), {})

    def result(self, turn: int, step: str) -> Any:
        return self.state["turns"].get(str(turn), {}).get(step)

    def finish(self, turn: int, step: str, result: Any = True) -> None:
        self.state["turns"].setdefault(str(turn), {})[step] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".progress-")
        with os.fdopen(fd, "w") as f:
            json.dump(self.state, f, indent=1, sort_keys=True, default=str)
        os.replace(tmp, self.path)

    def finished_turns(self) -> list[int]:
        return sorted(int(t) for t, steps in self.state["turns"].items() if "record" in steps)
