"""A varied set of safe images, built offline from what scikit-image ships, for measuring how
many ordinary uploads the default policy sends to human review.

- the five camera-like photos of tests/photos.py (person, pet, food, landscape, vehicle);
- every colour or grey picture in scikit-image's data folder (photographs, astronomy, medical
  and microscope images, text, textures, a logo), whole and as five half-size crops;
- the Labeled Faces in the Wild sample, upscaled to 200x200: 100 portraits and 100 patches
  of the same photos without a face;
- flat colours, including four skin tones, and a line drawing.
Every image is a JPEG or PNG as an uploader would send it.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from tests import photos

FLAT_COLOURS = {
    "white": "white",
    "black": "black",
    "grey": "grey",
    "red": "red",
    "green": "green",
    "sky": "skyblue",
    "brown": "brown",
    "pink": (255, 192, 203),
    "skin-light": (255, 205, 180),
    "skin-medium": (224, 172, 105),
    "skin-tan": (198, 134, 66),
    "skin-dark": (92, 56, 36),
}


def _jpeg(img: Image.Image, quality: int = 88) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _crops(img: Image.Image) -> list[Image.Image]:
    w, h = img.size
    corners = [(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2), (w // 4, h // 4)]
    return [img.crop((x, y, x + w // 2, y + h // 2)) for x, y in corners]


def _sample_pictures() -> dict[str, bytes]:
    found = {}
    for path in sorted(photos._data_dir().iterdir()):
        if path.suffix not in (".png", ".jpg"):
            continue
        with Image.open(path) as img:
            img = img.convert("RGB")
        if min(img.size) < 64:
            continue
        found[f"skimage/{path.stem}"] = _jpeg(img)
        for i, crop in enumerate(_crops(img)):
            found[f"skimage/{path.stem}/crop{i}"] = _jpeg(crop)
    return found


def _lfw() -> dict[str, bytes]:
    """scikit-image's LFW sample: 100 faces, then 100 patches of the same photos without one."""
    pictures = np.load(photos._data_dir() / "lfw_subset.npy")
    return {
        f"{'portrait' if i < 100 else 'patch'}/{i:03d}": _jpeg(
            Image.fromarray((grey * 255).astype(np.uint8)).resize((200, 200), Image.BICUBIC)
        )
        for i, grey in enumerate(pictures)
    }


@lru_cache(maxsize=1)
def safe_corpus() -> dict[str, bytes]:
    """name -> encoded bytes; about 380 images."""
    corpus = {f"photo/{kind}": data for kind, data in photos.safe_photos().items()}
    corpus.update(_sample_pictures())
    corpus.update(_lfw())
    corpus.update({f"flat/{name}": photos.flat(c, (256, 256)) for name, c in FLAT_COLOURS.items()})
    corpus["drawing"] = photos.drawing()
    return corpus
