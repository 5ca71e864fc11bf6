"""VLM: zero-shot image classification (CLIP/SigLIP family, transformers) with one prompt per
catalog product. The checkpoint comes from config as a local path (never a download at run time);
with none configured the ensemble runs without this labeler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from flywheel.label.prelabelers.base import FrameInput, Prelabeler, Product, Vote, abstain, unreadable

PROMPT = "a photo of {text}, a {category} product"
BATCH = 16


def prompt(p: Product) -> str:
    return PROMPT.format(text=p.text or p.ean, category=p.category or "grocery")


class VlmLabeler(Prelabeler):
    name = "vlm"

    def __init__(self, checkpoint: str | Path, products: Sequence[Product]) -> None:
        self.checkpoint = str(checkpoint)
        self.eans = [p.ean for p in products]
        self.prompts = [prompt(p) for p in products]
        self.load_error: str | None = None
        self.version = "unloaded"
        self.model = self.processor = None
        self._text = None
        try:
            self._load()
        except Exception as e:  # noqa: BLE001 - a checkpoint that does not load: abstain, never fail
            self.load_error = f"checkpoint did not load: {type(e).__name__}: {e}"

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoProcessor

        path = Path(self.checkpoint)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a local checkpoint directory")
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        cfg = (path / "config.json").read_bytes()
        self.version = f"{self.model.config.model_type}-{hashlib.sha256(cfg).hexdigest()[:8]}"
        with torch.inference_mode():
            tok = self.processor(text=self.prompts, return_tensors="pt", padding=True)
            t = self.model.get_text_features(**tok)
            t = getattr(t, "pooler_output", t)
            self._text = t / t.norm(dim=-1, keepdim=True)

    def _scores(self, images: list) -> list:  # noqa: ANN001
        import torch

        with torch.inference_mode():
            px = self.processor(images=images, return_tensors="pt")
            v = self.model.get_image_features(pixel_values=px["pixel_values"])
            v = getattr(v, "pooler_output", v)
            v = v / v.norm(dim=-1, keepdim=True)
            logits = self.model.logit_scale.exp() * v @ self._text.T
            return logits.softmax(dim=-1).cpu().numpy()

    def label(self, frames: Sequence[FrameInput]) -> list[Vote]:
        if self.model is None:
            return [abstain("no_model", self.load_error or "") for _ in frames]
        out: list[Vote | None] = [unreadable(f) for f in frames]
        todo = [i for i, v in enumerate(out) if v is None]
        for k in range(0, len(todo), BATCH):
            idx = todo[k:k + BATCH]
            try:
                probs = self._scores([frames[i].rgb for i in idx])
            except Exception as e:  # noqa: BLE001 - a VLM failure is an abstention
                for i in idx:
                    out[i] = abstain("vlm_error", f"{type(e).__name__}: {e}")
                continue
            for i, p in zip(idx, probs, strict=True):
                j = int(p.argmax())
                out[i] = Vote(self.eans[j], float(p[j]), f"zero-shot {self.prompts[j]!r} p={p[j]:.2f}")
        return out
