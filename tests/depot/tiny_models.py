"""Tiny, randomly initialised checkpoints built locally (no downloads): a CLIP (transformers config
classes + a byte-level BPE vocabulary) and an ultralytics classifier registered as production."""

from __future__ import annotations

from pathlib import Path

from edge_agent.lake import Lake


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level alphabet: every byte maps to a printable character
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def build_tiny_clip(dest: Path) -> Path:
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    dest.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    for t in ("<|startoftext|>", "<|endoftext|>"):
        vocab[t] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])  # byte-level, no merges: one token per character
    eos = vocab["<|endoftext|>"]
    cfg = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 32,
                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": eos, "pad_token_id": eos},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16)
    import torch

    torch.manual_seed(0)
    out = dest / "clip"
    CLIPModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def register_tiny_production_model(lake: Lake, tmp: Path, model_id: str = "cls-tiny-0001") -> str:
    """An ultralytics classifier built from yaml (random init) in the registry layout, pointed to by
    models/production.json, the way the Learner publishes one."""
    from flywheel.learner.yolo_env import configure

    configure()
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    from tests.support.registry import register_model

    weights = tmp / "weights.pt"
    YOLO("yolov8n-cls.yaml", task="classify").save(str(weights))
    register_model(lake, model_id, {"weights.pt": weights.read_bytes()}, classes=["a", "b"],
                   imgsz=64, production=True)
    return model_id
