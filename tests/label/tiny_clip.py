"""A tiny randomly initialised CLIP checkpoint written with transformers' own classes (no download):
a byte-level character vocabulary made here, the real tokenizer, image processor and model classes,
saved with save_pretrained so the labeler's real loading and inference path runs on it."""

from __future__ import annotations

from pathlib import Path


def _byte_chars() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return sorted(set(bytes_to_unicode().values()))


def build_tiny_clip(dest: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    dest.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = CLIPTokenizer(vocab=vocab, merges=[])  # characters only: enough to run the real path
    image = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    torch.manual_seed(seed)
    text = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=77,
                          bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                          pad_token_id=vocab["<|endoftext|>"])
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, image_size=32, patch_size=8)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                 projection_dim=16))
    model.save_pretrained(dest)
    CLIPProcessor(image_processor=image, tokenizer=tok).save_pretrained(dest)
    return dest
