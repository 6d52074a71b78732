"""The words on a poster: Tesseract OCR, bounded, cached by image content.

A poster's title, tagline, stars' names and credits ("a film by", "the true story of") carry
genre cues that a 224x224 squash of the picture cannot show. ``OcrReader`` runs Debian's
``tesseract`` binary on one decoded image: grayscale, scaled to ``height`` pixels high (small
thumbnails have letters too small for the engine), sparse-text mode (``--psm 11``: posters are
not pages). Every call is bounded: the image it sees is at most ``height`` x ``3 * height``
pixels, the engine is killed after ``timeout_s`` and what it read is cut to ``max_chars``, so
a pixel bomb or a poster of 10,000 words costs no more than any other poster.

Texts are cached like features (``posterml.features.cache``: sha256 of the image file,
atomic writes) in a namespace naming the engine's version and settings.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from posterml.cache_dir import cache_dir
from posterml.data.content import hash_files
from posterml.features.base import ImageLike, as_rgb_image
from posterml.features.cache import FeatureCache
from posterml.features.image_stream import map_decoded

log = logging.getLogger(__name__)

ENGINE = "tesseract"
# Bump when the preprocessing or the text clean-up changes: cached texts of another version
# are never read.
OCR_VERSION = 1
_SPACES = re.compile(r"\s+")


class OcrUnavailable(RuntimeError):
    """The OCR engine is not installed: a model with a text view cannot answer honestly."""


@cache
def engine_version() -> str:
    """``tesseract --version``'s first line's version (``5.3.0``); ``OcrUnavailable`` when the
    binary is missing."""
    binary = shutil.which(ENGINE)
    if binary is None:
        raise OcrUnavailable(
            "this model reads the words on posters with Tesseract OCR, which is not installed: "
            "apt-get install tesseract-ocr (Debian/Ubuntu) or brew install tesseract (macOS)"
        )
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    words = (out.stdout or out.stderr).split()
    return words[1] if len(words) > 1 else "unknown"


def clean_text(raw: str, max_chars: int) -> str:
    """What OCR read as one line: whitespace folded, control characters dropped, cut to
    ``max_chars`` at a word boundary."""
    text = "".join(ch for ch in raw if ch.isprintable() or ch.isspace())
    text = _SPACES.sub(" ", text).strip()
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
    return text


@dataclass
class OcrReader:
    """Reads the words on one decoded poster with Tesseract (see the module docstring).

    ``height`` is the height the poster is scaled to before OCR, ``psm`` Tesseract's page
    segmentation mode, ``language`` its traineddata, ``timeout_s`` the most one poster may
    take and ``max_chars`` the most text kept.
    """

    height: int = 600
    psm: int = 11
    language: str = "eng"
    timeout_s: float = 10.0
    max_chars: int = 1000

    @property
    def namespace(self) -> str:
        """The cache namespace: engine, version and every setting that changes the text."""
        settings = f"h{self.height}-psm{self.psm}-{self.language}-c{self.max_chars}"
        return f"{ENGINE}-{engine_version()}-{settings}-v{OCR_VERSION}"

    @property
    def min_size(self) -> tuple[int, int]:
        """What the decoder may shrink a large image towards: OCR needs ``height`` rows."""
        return (self.height, self.height * 2 // 3)

    def params(self) -> dict[str, Any]:
        """What identifies this reader, for logging as MLflow params."""
        return {
            "ocr_engine": ENGINE,
            "ocr_height": self.height,
            "ocr_psm": self.psm,
            "ocr_language": self.language,
        }

    def check(self) -> None:
        """Raise ``OcrUnavailable`` now, rather than at the first poster, without the engine."""
        engine_version()

    def page(self, image: ImageLike) -> np.ndarray:
        """The grayscale page OCR reads: ``height`` rows, at most ``3 * height`` columns.

        Idempotent (a page gives itself back), so a server can keep pages instead of images.
        """
        gray = as_rgb_image(image).convert("L")
        width = max(1, min(3 * self.height, round(gray.width * self.height / max(1, gray.height))))
        return np.asarray(gray.resize((width, self.height), Image.BICUBIC), dtype=np.uint8)

    def read(self, image: ImageLike) -> str:
        """The words on ``image`` as one line (empty when none were read, or when the engine
        failed or ran past ``timeout_s`` on it, which is logged)."""
        command = [ENGINE, "stdin", "stdout", "--psm", str(self.psm), "-l", self.language]
        # One thread per engine: posterml runs several posters at once instead.
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        self.check()
        try:
            done = subprocess.run(
                command,
                input=_ppm(self.page(image)),
                capture_output=True,
                timeout=self.timeout_s,
                env=env,
            )
        except subprocess.TimeoutExpired:
            log.warning("OCR ran past %.0f s on a poster; its text is left empty", self.timeout_s)
            return ""
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            log.warning("OCR failed on a poster (%s); its text is left empty", "".join(reason))
            return ""
        return clean_text(done.stdout.decode("utf-8", "replace"), self.max_chars)

    def read_images(self, images: Sequence[ImageLike], workers: int | None = None) -> list[str]:
        """The text of each decoded image, in order, several engines at once."""
        from concurrent.futures import ThreadPoolExecutor

        if not images:
            return []
        self.check()
        with ThreadPoolExecutor(min(len(images), workers or _workers())) as pool:
            return list(pool.map(self.read, images))

    def read_paths(
        self,
        paths: Sequence[str],
        *,
        cache: bool = True,
        cache_root: Path | None = None,
        workers: int | None = None,
        progress: bool = True,
    ) -> tuple[list[str | None], list[tuple[str, str]]]:
        """The text of each image file (None for unreadable ones, listed with their reason in
        the second result), reading cached texts and running the engine on the rest."""
        self.check()
        store = FeatureCache(self.namespace, root=cache_root or cache_dir() / "ocr")
        keys = hash_files(paths) if cache else [None] * len(paths)
        cached = store.get_many([k for k in keys if k]) if cache else {}
        # A text is stored as a one-element unicode array (the feature cache's .npy files).
        texts: list[str | None] = [
            str(cached[k].reshape(-1)[0]) if k in cached else None for k in keys
        ]
        todo = [i for i, k in enumerate(keys) if k not in cached]
        failures: list[tuple[str, str]] = []
        if todo:
            log.info("OCR: %d posters to read, %d cached", len(todo), len(paths) - len(todo))
        fresh = {}
        for item in map_decoded(
            [paths[i] for i in todo],
            self.read,
            min_size=self.min_size,
            workers=workers or _workers(),
            progress=progress,
            desc="reading the words on posters",
        ):
            i = todo[item.index]
            if not item.ok:
                failures.append((item.path, item.reason))
                continue
            texts[i] = item.result
            if keys[i]:
                fresh[keys[i]] = np.array(item.result)
            if len(fresh) >= 64:
                store.put_many(fresh)
                fresh = {}
        store.put_many(fresh)
        return texts, failures


def _ppm(page: np.ndarray) -> bytes:
    """A page as binary PGM, uncompressed: the cheapest format to write and to read."""
    buffer = io.BytesIO()
    Image.fromarray(page, "L").save(buffer, "PPM")
    return buffer.getvalue()


def _workers() -> int:
    return max(1, os.cpu_count() or 1)
