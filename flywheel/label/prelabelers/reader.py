"""Reader: RapidOCR (PP-OCR ONNX models shipped inside the `rapidocr-onnxruntime` wheel) reads the
brand and name printed on the packaging; rapidfuzz matches the text to the catalog.
"""

from __future__ import annotations

from collections.abc import Sequence

from flywheel.label.prelabelers.base import FrameInput, Prelabeler, Product, Vote, abstain, unreadable

MIN_SCORE = 70.0  # rapidfuzz WRatio (0..100) below which a read matches nothing
MIN_TEXT = 3  # characters read before a match is attempted
UPSCALE_BELOW = 480  # small frames are upscaled 2x: PP-OCR's recogniser wants ~32 px text lines


class ReaderLabeler(Prelabeler):
    name = "reader"

    def __init__(self, products: Sequence[Product], engine=None) -> None:  # noqa: ANN001
        named = [p for p in products if p.text]
        self.skipped = len(products) - len(named)  # products without a name or brand: never matched
        self.choices = {p.ean: p.text.lower() for p in named}
        self._engine = engine
        import rapidocr_onnxruntime

        self.version = f"rapidocr-{getattr(rapidocr_onnxruntime, '__version__', '1')}"

    @property
    def engine(self):  # noqa: ANN201
        if self._engine is None:
            from rapidocr_onnxruntime import RapidOCR

            self._engine = RapidOCR()
        return self._engine

    def read(self, rgb) -> list[tuple[str, float]]:  # noqa: ANN001
        import cv2

        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if max(bgr.shape[:2]) < UPSCALE_BELOW:
            bgr = cv2.resize(bgr, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        result, _ = self.engine(bgr)
        return [(str(text), float(score)) for _box, text, score in (result or [])]

    def match(self, text: str) -> tuple[str, float] | None:
        """(ean, score 0..100) of the catalog text that best matches `text`, or None."""
        from rapidfuzz import fuzz, process

        hit = process.extractOne(text.lower(), self.choices, scorer=fuzz.WRatio, score_cutoff=MIN_SCORE)
        return (hit[2], float(hit[1])) if hit else None

    def label(self, frames: Sequence[FrameInput]) -> list[Vote]:
        out = []
        for f in frames:
            bad = unreadable(f)
            if bad:
                out.append(bad)
                continue
            try:
                out.append(self._one(f))
            except Exception as e:  # noqa: BLE001 - an OCR failure is an abstention
                out.append(abstain("ocr_error", f"{type(e).__name__}: {e}"))
        return out

    def _one(self, f: FrameInput) -> Vote:
        reads = [(t, s) for t, s in self.read(f.rgb) if sum(c.isalpha() for c in t) >= MIN_TEXT]
        if not reads:
            return abstain("no_text")
        text = " ".join(t for t, _ in reads)
        hit = self.match(text)
        if hit is None:
            return abstain("no_catalog_match", repr(text[:60]))
        ean, score = hit
        ocr = sum(s for _, s in reads) / len(reads)
        return Vote(ean, round(score / 100.0 * ocr, 4),
                    f"read {text[:60]!r} ~ {self.choices[ean]!r} ({score:.0f})")
