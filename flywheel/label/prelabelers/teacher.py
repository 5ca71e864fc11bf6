"""Teacher: a larger model than the device's, trained by the Learner on everything labelled so far;
the production model (models/production.json, ONNX) until one exists.

Loaded through the device's own runtime (`edge_agent.model.DeviceModel`): the exact preprocessing
the fleet runs. A checkpoint that does not load leaves the teacher abstaining with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flywheel.label.prelabelers.base import FrameInput, Prelabeler, Vote, abstain, vote_each


class TeacherLabeler(Prelabeler):
    name = "teacher"

    def __init__(self, model_dir: str | Path | None, *, min_confidence: float = 0.0) -> None:
        """`model_dir`: an agent model-slot layout (slots/<s>/model.onnx + model.json, `active`)."""
        self.min_confidence = min_confidence
        self.model = None
        self.load_error: str | None = None
        self.version = "none"
        if model_dir is None:
            self.load_error = "no teacher model"
            return
        from edge_agent.model import DeviceModel, ModelError

        try:
            self.model = DeviceModel(model_dir, threads=2)
            self.version = self.model.version
        except (ModelError, OSError, ValueError) as e:
            self.load_error = f"checkpoint did not load: {e}"

    @classmethod
    def from_registry(cls, lake, work_dir: str | Path, model_id: str | None = None) -> TeacherLabeler:  # noqa: ANN001
        """The registry's model `model_id` (default: production): the device's ONNX and its
        device.json, verified against the model card, in a flat model directory under `work_dir`."""
        from flywheel.learner import registry

        model_id = model_id or registry.production_model_id(lake)
        if not model_id:
            return cls(None)
        try:
            return cls(registry.write_slot(lake, model_id, Path(work_dir) / "teacher" / model_id))
        except Exception as e:  # noqa: BLE001 - missing or corrupt artifact: abstain, do not fail
            t = cls(None)
            t.load_error = f"checkpoint did not load: {model_id}: {type(e).__name__}: {e}"
            return t

    def label(self, frames: Sequence[FrameInput]) -> list[Vote]:
        if self.model is None:
            return [abstain("no_model", self.load_error or "") for _ in frames]
        return vote_each(frames, self._one, "error")

    def _one(self, f: FrameInput) -> Vote:
        p = self.model.predict(f.rgb)
        if p.label is None:
            return abstain("sees_nothing", f"'none' at {p.confidence:.2f}")
        if p.confidence < self.min_confidence:
            return abstain("low_confidence", f"{p.label} at {p.confidence:.2f}")
        return Vote(p.label, p.confidence, f"{self.version} top-1 {p.label} p={p.confidence:.2f}")
