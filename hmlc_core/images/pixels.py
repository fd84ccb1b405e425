"""Decoding one image file into the fixed-size RGB pixels every image dataset holds (Pillow and numpy only).

:func:`read_image` opens a file with Pillow, restricted to the formats of
:data:`IMAGE_SUFFIXES` (so a file named ``.png`` that is really PostScript is never handed to
Ghostscript), applies its EXIF orientation, converts it to RGB (transparent pixels are composited
on white), crops the largest centred square and resizes it to ``size x size`` with bicubic
resampling (:func:`PIL.ImageOps.fit`); 16-bit greyscale is scaled to 8 bits. Every failure -- not an image, a truncated file, a
decompression bomb (more than :data:`PIL.Image.MAX_IMAGE_PIXELS` pixels), an unsupported mode --
raises :class:`ImageReadError` naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["IMAGE_FORMATS", "IMAGE_SUFFIXES", "ImageReadError", "is_image_file", "read_image"]

#: File suffixes (compared in lower case) read as images; other files are ignored by the loaders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

#: The Pillow decoders :func:`read_image` may use (the JPEG decoder also opens MPO files, JPEGs holding several
#: pictures).
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF")

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message reads ``FILE: cannot read image: reason``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file at fault.
    reason : str
        What went wrong (Pillow's message, or the size of a decompression bomb).

    Attributes
    ----------
    path : pathlib.Path
    reason : str
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: cannot read image: {reason}")

    def __reduce__(self) -> tuple[type[ImageReadError], tuple[Path, str]]:
        return type(self), (self.path, self.reason)


def is_image_file(path: str | Path) -> bool:
    """Whether ``path``'s suffix is one of :data:`IMAGE_SUFFIXES` (case-insensitive); the file is not opened."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB of any Pillow mode; transparency (an alpha band or a palette's transparent colour) composited on white.

    16-bit and 32-bit integer greyscale (modes ``I;16*`` and ``I``, 16-bit PNG and TIFF files) are read as 16-bit
    values and scaled by 255 / 65535 (Pillow's own conversion would clip every value above 255 to white).
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)), 0, 255)
        image = Image.fromarray(grey.astype(np.uint8))
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def read_image(path: str | Path, size: int = 32) -> np.ndarray:
    """Decode one image file to a square RGB array.

    Parameters
    ----------
    path : str or pathlib.Path
        A PNG, JPEG, BMP, GIF (first frame), WebP or TIFF file.
    size : int, default 32
        Side in pixels of the result (>= 1).

    Returns
    -------
    numpy.ndarray of uint8, shape (size, size, 3)
        RGB values in 0..255: the image turned upright by its EXIF orientation tag, transparent
        pixels composited on white, the largest centred square cropped and resized with bicubic
        resampling.

    Raises
    ------
    ImageReadError
        (a ``ValueError``) If the file is missing, not an image of the accepted formats, truncated,
        larger than :data:`PIL.Image.MAX_IMAGE_PIXELS` pixels (Pillow's decompression bomb guard; its
        warning is treated as an error), or cannot be converted to RGB. The message names the file.
    ValueError
        If ``size`` is not a positive integer.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=list(IMAGE_FORMATS)) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = _to_rgb(upright)
                square = ImageOps.fit(rgb, (int(size), int(size)), method=Image.Resampling.BICUBIC)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(path, f"decompression bomb refused ({exc})") from exc
    except FileNotFoundError as exc:
        raise ImageReadError(path, "no such file") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageReadError(path, f"not a {'/'.join(IMAGE_FORMATS)} image") from exc
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, struct.error, ...)
        raise ImageReadError(path, f"{type(exc).__name__}: {exc}") from exc
    pixels = np.asarray(square, dtype=np.uint8)
    if pixels.shape != (size, size, 3):
        raise ImageReadError(path, f"decoded to shape {pixels.shape}, expected {(size, size, 3)}")
    return pixels
