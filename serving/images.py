"""Image plumbing in numpy and Pillow: decoding untrusted uploads, grids, PNG/GIF/npy.

Arrays leaving a model are float32 NCHW in [-1, 1]; everything after ``to_uint8`` is
uint8 NHWC (channels last, C = 1 or 3), the layout PIL and ``format=npy`` use.
"""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from serving.errors import ServingError

PAD = 2  # grid padding in pixels, as torchvision.utils.make_grid(padding=2)


# -- model output -> pixels ---------------------------------------------------------------
def to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] float NCHW -> uint8 NHWC, rounding like ``torchvision.utils.save_image``."""
    x01 = (np.asarray(x, dtype=np.float32) + 1.0) / 2.0
    return np.clip(x01 * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def grid_columns(n: int) -> int:
    """Tiles per row of a generate grid: ceil(sqrt(n))."""
    return max(1, math.isqrt(n - 1) + 1) if n > 0 else 1


def make_grid(tiles: np.ndarray, nrow: int, padding: int = PAD, pad_value: int = 0) -> np.ndarray:
    """uint8 NHWC tiles -> one HWC image, laid out exactly as ``torchvision.utils.make_grid``.

    ``nrow`` tiles per row, ``padding`` pixels of ``pad_value`` around and between tiles,
    rows filled left to right; like torchvision a single tile comes back unpadded.
    Greyscale stays one channel (torchvision would repeat it to three).
    """
    if tiles.ndim != 4:
        raise ValueError(f"tiles must be NHWC, got shape {tiles.shape}")
    n, h, w, c = tiles.shape
    if n == 1:
        return tiles[0].copy()
    xmaps = min(nrow, n)
    ymaps = math.ceil(n / xmaps)
    cell_h, cell_w = h + padding, w + padding
    grid = np.full((cell_h * ymaps + padding, cell_w * xmaps + padding, c), pad_value, dtype=tiles.dtype)
    for k in range(n):
        y, x = divmod(k, xmaps)
        top, left = y * cell_h + padding, x * cell_w + padding
        grid[top : top + h, left : left + w] = tiles[k]
    return grid


def to_pil(arr: np.ndarray) -> Image.Image:
    """HWC uint8 (C = 1 or 3) -> PIL image in mode L or RGB."""
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ValueError(f"expected HWC with 1 or 3 channels, got {arr.shape}")
    return Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA
PNG_PROBE_ROWS = 16  # rows compressed with each filter to choose one for the image


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _png_rows(rows: np.ndarray, channels: int, kind: int) -> np.ndarray:
    """PNG scanlines with one filter for every row: 0 None, 1 Sub (left), 2 Up (above)."""
    f = rows.copy() if kind else rows
    if kind == 1:
        f[:, channels:] -= rows[:, :-channels]  # uint8 arithmetic wraps modulo 256, as PNG's does
    elif kind == 2:
        f[1:] -= rows[:-1]
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = kind
    out[:, 1:] = f
    return out


def encode_png(arr: np.ndarray, level: int = 1) -> bytes:
    """Lossless 8-bit PNG of uint8 HWC at zlib ``level`` (GANZOO_PNG_LEVEL).

    Written here rather than by Pillow, whose PNG encoder tries all five filters on every
    row and has no setting to choose fewer: that search, not deflate, was most of the cost (a
    512x512 RGB grid: 20 ms in Pillow at level 1, 28 ms at level 0). One filter for the whole
    image, the one that compresses a probe of a few rows best (None for GAN grids, Up for
    photos), then zlib: 7.6 ms and a smaller file for that grid (docs/PERFORMANCE.md).
    """
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    if c not in PNG_COLOUR_TYPES or h == 0 or w == 0:
        raise ValueError(f"cannot write a PNG of shape {arr.shape}")
    rows = a.reshape(h, w * c)
    probe = rows[:: max(1, h // PNG_PROBE_ROWS)][:PNG_PROBE_ROWS]
    kind = min((0, 1, 2), key=lambda k: len(zlib.compress(_png_rows(probe, c, k).tobytes(), level)))
    header = struct.pack(">IIBBBBB", w, h, 8, PNG_COLOUR_TYPES[c], 0, 0, 0)
    data = zlib.compress(_png_rows(rows, c, kind).tobytes(), level)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def encode_gif(frames: np.ndarray, duration_ms: int = 120) -> bytes:
    """uint8 NHWC frames -> looping animated GIF."""
    images = [to_pil(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


def encode_npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


# -- uploads -> model input ---------------------------------------------------------------
def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode an untrusted upload, refusing empty, non-image, corrupt and oversized bodies.

    The pixel count is checked from the header before any pixel is decoded, so a
    decompression bomb costs nothing. EXIF orientation is applied, so a phone photo comes
    out the way it is displayed.
    """
    if not data:
        raise ServingError(400, "empty body: send an image (PNG or JPEG)")
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > max_pixels:
            raise ServingError(
                413, f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}", {"max_pixels": max_pixels}
            )
        img.load()
        return upright(img)
    except ServingError:
        raise
    except Image.DecompressionBombError as e:
        raise ServingError(413, f"image too large: {e}", {"max_pixels": max_pixels}) from None
    except UnidentifiedImageError:
        raise ServingError(400, "body is not an image this server can read (send PNG or JPEG)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ServingError(400, f"image is corrupt or truncated: {e}") from None


def upright(img: Image.Image) -> Image.Image:
    """The image as displayed: EXIF orientation applied (phone photos)."""
    return ImageOps.exif_transpose(img) or img


_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
_INTEGER = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _grey8(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8), "L")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Greyscale or RGB as the model wants, from any mode Pillow opens; a mode it cannot
    convert is a 400, never a 500.

    Transparency is flattened onto white; 16/32-bit integer grey is scaled from 0..65535
    (not clipped) to 8 bits; float grey (``F``) in [0, 1] is scaled to 0..255, other float
    ranges are clipped; modes Pillow cannot take straight to L (``LAB``, ...) go through RGB.
    """
    has_alpha = img.mode in _ALPHA or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA") if img.mode != "La" else img.convert("LA").convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode in _INTEGER:  # 16-bit grey: scale, not clip, to 8 bits
        img = _grey8(np.asarray(img, dtype=np.float64) / 257.0)
    elif img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        img = _grey8(arr * 255.0 if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0 else arr)
    target = "L" if channels == 1 else "RGB"
    try:
        return img.convert(target)
    except ValueError:
        pass
    try:
        return img.convert("RGB").convert(target)
    except ValueError:
        raise ServingError(
            400, f"image mode {img.mode!r} cannot be converted to {target}: send RGB or greyscale", {"mode": img.mode}
        ) from None


def square(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to ``size`` x ``size``."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return img if img.size == (size, size) else img.resize((size, size), Image.Resampling.BICUBIC)


def pil_to_array(img: Image.Image) -> np.ndarray:
    """L or RGB PIL image -> float32 [1, C, H, W] in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return (arr.transpose(2, 0, 1)[None] / 127.5 - 1.0).astype(np.float32)


def working_size(w: int, h: int, short_side: int) -> tuple[int, int]:
    """Size with the shorter side scaled to ``short_side``, aspect ratio kept."""
    scale = short_side / min(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def padded_size(w: int, h: int, multiple: int = 4, minimum: int = 0) -> tuple[int, int]:
    """(w, h) padded up to at least ``minimum`` and then to a multiple of ``multiple``."""
    pw, ph = max(w, minimum), max(h, minimum)
    return pw + (-pw) % multiple, ph + (-ph) % multiple


def pad_to_multiple(x: np.ndarray, multiple: int = 4, minimum: int = 0) -> np.ndarray:
    """Pad NCHW bottom/right up to a multiple of ``multiple`` and at least ``minimum`` per side
    (reflect, edge when too small to reflect)."""
    h, w = x.shape[2], x.shape[3]
    tw, th = padded_size(w, h, multiple, minimum)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if h > ph and w > pw else "edge"
    return np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)
