"""Frame encoders: one vector per frame, for similarity search.

Three kinds, chosen by a spec dict (stored next to the index, so search rebuilds the same encoder):

- `production_model`: the penultimate layer (the input of the last Linear layer, i.e. the pooled
  features the classifier head sees) of the production model in the registry
  (`models/production.json` -> `models/<id>/weights.pt`, an ultralytics checkpoint). Default when
  the registry has one: frames that look alike TO THE MODEL end up close.
- `hf_clip`: a transformers CLIP checkpoint from a local path (or hub id, when downloads are
  allowed): image vectors, and text vectors for text queries.
- `descriptor` (v1, 256 dims): the deterministic fallback when there is no model yet. A frame is
  resized to 64x64 and described by four L2-normalised blocks, concatenated and normalised again:
  an RGB colour histogram (4x4x4 = 64 bins), a 4x4 grid of mean RGB (48), a 4x4 grid of mean luma
  (16) and a 4x4 grid of 8-bin gradient-orientation histograms weighted by magnitude (128, HOG-like).
  Same pixels -> same vector on every machine; no weights, no randomness.

All vectors are float32 and L2-normalised (cosine distance = 1 - dot product).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.lake import Lake, ObjectNotFound


class EncoderError(Exception):
    pass


class FrameEncoder(Protocol):
    spec: dict[str, Any]
    dim: int
    supports_text: bool

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray: ...

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def encoder_id(spec: dict[str, Any]) -> str:
    """A table-name-safe id: one LanceDB table per encoder (vectors of two encoders never mix)."""
    kind = spec["kind"]
    if kind == "descriptor":
        return f"descriptor_v{spec.get('version', 1)}"
    if kind == "production_model":
        return "model_" + re.sub(r"[^A-Za-z0-9_]", "_", spec["model_id"])
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{kind}_{digest}"


class DescriptorEncoder:
    """The documented fallback descriptor (see the module docstring)."""

    dim = 256
    supports_text = False

    def __init__(self) -> None:
        self.spec = {"kind": "descriptor", "version": 1}

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self._one(im) for im in images]) if images else np.zeros((0, self.dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        raise EncoderError("the descriptor encoder has no text side; configure a CLIP encoder")

    @staticmethod
    def _one(rgb: np.ndarray) -> np.ndarray:
        from PIL import Image

        im = np.asarray(Image.fromarray(rgb).convert("RGB").resize((64, 64), Image.Resampling.BILINEAR),
                        np.float32)
        q = np.minimum((im / 64.0).astype(np.int32), 3)
        hist = np.bincount((q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel(), minlength=64)
        cells = im.reshape(4, 16, 4, 16, 3).mean(axis=(1, 3))  # 4x4x3
        y = im @ np.array([0.299, 0.587, 0.114], np.float32)
        ly = y.reshape(4, 16, 4, 16).mean(axis=(1, 3))
        gx = np.zeros_like(y)
        gy = np.zeros_like(y)
        gx[:, 1:-1] = y[:, 2:] - y[:, :-2]
        gy[1:-1, :] = y[2:, :] - y[:-2, :]
        mag = np.hypot(gx, gy)
        ori = np.minimum(((np.arctan2(gy, gx) % np.pi) / np.pi * 8).astype(np.int32), 7)
        cell = (np.arange(64)[:, None] // 16) * 4 + (np.arange(64)[None, :] // 16)
        hog = np.bincount((cell * 8 + ori).ravel(), weights=mag.ravel(), minlength=128)
        blocks = [hist.astype(np.float32), cells.ravel() - cells.mean(), ly.ravel() - ly.mean(), hog]
        return _l2(np.concatenate([_l2(np.asarray(b, np.float32)) for b in blocks]))


class ProductionModelEncoder:
    """Penultimate-layer features of an ultralytics classifier (a forward pre-hook on the last
    Linear layer captures what the head sees)."""

    supports_text = False

    def __init__(self, weights: Path, model_id: str, imgsz: int) -> None:
        import torch

        from flywheel.learner.yolo_env import configure

        configure()  # offline ultralytics: must run before its first import
        from ultralytics import YOLO

        self.spec = {"kind": "production_model", "model_id": model_id, "imgsz": imgsz}
        self.imgsz = imgsz
        self._net = YOLO(str(weights)).model.float().eval()
        linears = [m for m in self._net.modules() if isinstance(m, torch.nn.Linear)]
        if not linears:
            raise EncoderError(f"model {model_id} has no Linear head to take features from")
        self._feats: list[Any] = []
        linears[-1].register_forward_pre_hook(lambda _m, args: self._feats.append(args[0].detach()))
        self.dim = int(linears[-1].in_features)

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        for i in range(0, len(images), 32):
            batch = np.stack([
                np.asarray(Image.fromarray(im).resize((self.imgsz, self.imgsz), Image.Resampling.BILINEAR),
                           np.float32).transpose(2, 0, 1) / 255.0 for im in images[i:i + 32]])
            self._feats.clear()
            with torch.inference_mode():
                self._net(torch.from_numpy(batch))
            out.append(self._feats[-1].flatten(1).cpu().numpy())
        return _l2(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        raise EncoderError("the production model has no text side; configure a CLIP encoder")


class ClipEncoder:
    """A transformers CLIP model (image and text towers) from a local checkpoint directory."""

    supports_text = True

    def __init__(self, path: str) -> None:
        from transformers import AutoTokenizer, CLIPModel

        self.spec = {"kind": "hf_clip", "path": str(path)}
        self._model = CLIPModel.from_pretrained(path).eval()
        self._tok = AutoTokenizer.from_pretrained(path)
        vc = self._model.config.vision_config
        self.size = int(vc.image_size)
        self.dim = int(self._model.config.projection_dim)
        pp = Path(path) / "preprocessor_config.json"
        cfg = json.loads(pp.read_text()) if pp.exists() else {}
        self.mean = np.array(cfg.get("image_mean", [0.4815, 0.4578, 0.4082]), np.float32)
        self.std = np.array(cfg.get("image_std", [0.2686, 0.2613, 0.2758]), np.float32)

    @staticmethod
    def _tensor(out: Any) -> Any:
        # transformers returns a tensor, or a model output whose pooled/embeds field holds it
        for name in ("image_embeds", "text_embeds", "pooler_output"):
            if hasattr(out, name) and getattr(out, name) is not None:
                return getattr(out, name)
        return out

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        for i in range(0, len(images), 32):
            batch = np.stack([
                ((np.asarray(Image.fromarray(im).resize((self.size, self.size), Image.Resampling.BICUBIC),
                             np.float32) / 255.0 - self.mean) / self.std).transpose(2, 0, 1)
                for im in images[i:i + 32]])
            with torch.inference_mode():
                feats = self._tensor(self._model.get_image_features(pixel_values=torch.from_numpy(batch)))
            out.append(feats.cpu().numpy())
        return _l2(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tok = self._tok(list(texts), padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            feats = self._tensor(self._model.get_text_features(**tok))
        return _l2(feats.cpu().numpy())


def production_model(lake: Lake) -> tuple[str, int] | None:
    """(model_id, imgsz) of the registry's production model, or None when there is none."""
    from flywheel.learner import registry

    model_id = registry.production_model_id(lake)
    if model_id is None:
        return None
    try:
        lake.head(registry.key(model_id, "weights.pt"))
    except ObjectNotFound:
        return None
    return model_id, registry.read_card(lake, model_id).imgsz  # a malformed card is an error


def resolve_spec(lake: Lake, kind: str = "auto", hf_path: str | None = None) -> dict[str, Any]:
    """The encoder spec for a configuration: "auto" = production model if any, else descriptor."""
    if kind == "hf_clip" or (kind == "auto" and hf_path):
        if not hf_path:
            raise EncoderError("encoder kind hf_clip needs a checkpoint path")
        return {"kind": "hf_clip", "path": hf_path}
    if kind in ("auto", "production_model"):
        found = production_model(lake)
        if found:
            return {"kind": "production_model", "model_id": found[0], "imgsz": found[1]}
        if kind == "production_model":
            raise EncoderError("no production model in the registry (models/production.json)")
    return {"kind": "descriptor", "version": 1}


_CACHE: dict[str, FrameEncoder] = {}


def load_encoder(spec: dict[str, Any], lake: Lake | None = None) -> FrameEncoder:
    """Build (once per process) the encoder a spec names."""
    cache_key = json.dumps(spec, sort_keys=True) + (lake.uri if lake is not None else "")
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    kind = spec["kind"]
    enc: FrameEncoder
    if kind == "descriptor":
        enc = DescriptorEncoder()
    elif kind == "hf_clip":
        enc = ClipEncoder(spec["path"])
    elif kind == "production_model":
        if lake is None:
            raise EncoderError("the production model encoder needs the lake (registry)")
        dest = Path(tempfile.gettempdir()) / "flywheel-depot-models"
        dest.mkdir(parents=True, exist_ok=True)
        weights = dest / f"{spec['model_id']}-weights.pt"
        if not weights.exists():
            tmp = weights.with_suffix(".tmp")
            tmp.write_bytes(lake.get(f"models/{spec['model_id']}/weights.pt"))
            tmp.replace(weights)
        enc = ProductionModelEncoder(weights, spec["model_id"], int(spec.get("imgsz", 64)))
    else:
        raise EncoderError(f"unknown encoder kind {kind!r}")
    _CACHE[cache_key] = enc
    return enc
