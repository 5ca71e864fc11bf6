"""The pre-labelers' settings: which checkpoints the teacher and the VLM load (local paths or the
registry; never a download at run time) and whether the OCR reader runs."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from edge_agent.lake import Lake


class LabelersResource(dg.ConfigurableResource):
    vlm_checkpoint: str | None = Field(
        default=None, description="Local directory of a CLIP/SigLIP checkpoint (save_pretrained layout) "
                                  "for the zero-shot VLM labeler; None: the ensemble runs without it.")
    teacher_model_id: str | None = Field(
        default=None, description="Registry id of the teacher model; None: the production model.")
    ocr: bool = Field(default=True, description=(
        "Run the RapidOCR reader: about 1 s a frame (not where a barcode decided); it names ~3 % of "
        "frames on the benchmark day."))
    work_dir: str = Field(default="var/label", description="Where the teacher's files are installed.")

    def build(self, lake: Lake, products: list) -> tuple[list, dict[str, str]]:
        """(labelers, a status line per labeler for the asset's metadata)."""
        from flywheel.label.prelabel import build_labelers

        Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        return build_labelers(lake, products, self.work_dir, vlm_checkpoint=self.vlm_checkpoint,
                              teacher_model_id=self.teacher_model_id, ocr=self.ocr)
