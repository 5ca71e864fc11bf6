"""Image checks shared by the imports: fully decoded (a truncated file fails here, not in training),
and a perceptual hash for near-duplicate leaks between training sources and frozen test sets."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageFile

# pHash of 16x16 DCT terms (256 bits): re-encoded or resized copies of a photo differ by <= ~14
# bits, different photos of one product on one background by >= ~50 (measured on the test photos)
PHASH_SIZE = 16
NEAR_DUP_BITS = 24


class BadImage(ValueError):
    """The bytes are not an image PIL can decode completely."""


def inspect_image(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) after a full decode; BadImage with the reason otherwise."""
    if not data:
        raise BadImage("empty file")
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG must fail, not be padded with grey
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "?"
            im.load()
            w, h = im.size
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, DecompressionBomb...)
        raise BadImage(f"unreadable image ({type(e).__name__}: {e})") from None
    if w < 8 or h < 8:
        raise BadImage(f"image is {w}x{h} px (need at least 8x8)")
    return w, h, fmt


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def phash(data: bytes) -> np.ndarray:
    """Perceptual hash (imagehash's DCT pHash, PHASH_SIZE^2 bits) as uint64 words, robust to
    re-encoding and resizing."""
    import imagehash

    with Image.open(io.BytesIO(data)) as im:
        bits = imagehash.phash(im.convert("L"), hash_size=PHASH_SIZE).hash.flatten()
    return np.packbits(bits).view(">u8").astype(np.uint64)
