"""serving.images: grid layout (against torchvision), pixel conversion, untrusted uploads."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from serving import images
from serving.errors import ServingError


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("n, cols", [(1, 1), (2, 2), (3, 2), (4, 2), (5, 3), (9, 3), (10, 4), (64, 8), (256, 16)])
def test_grid_columns_is_ceil_sqrt(n, cols):
    assert images.grid_columns(n) == cols


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 9, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_make_grid_matches_torchvision_layout(n, channels):
    torch = pytest.importorskip("torch")
    from torchvision.utils import make_grid as tv_make_grid

    rng = np.random.default_rng(n)
    tiles = rng.integers(1, 256, size=(n, 6, 5, channels), dtype=np.uint8)  # 1.. so padding (0) shows
    nrow = images.grid_columns(n)
    ours = images.make_grid(tiles, nrow)
    theirs = tv_make_grid(torch.from_numpy(tiles).permute(0, 3, 1, 2), nrow=nrow, padding=2, pad_value=0)
    theirs = theirs.permute(1, 2, 0).numpy()  # torchvision repeats grey to 3 channels
    assert ours.shape[:2] == theirs.shape[:2]
    np.testing.assert_array_equal(ours, theirs[:, :, :channels])


def test_to_uint8_rounds_like_torchvision_save_image():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).uniform(-1.3, 1.3, size=(4, 3, 5, 7)).astype(np.float32)
    x[0, 0, 0, :3] = [-1.0, 0.0, 1.0]
    expected = torch.from_numpy((x + 1) / 2).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    got = images.to_uint8(x)
    assert got.dtype == np.uint8 and got.shape == (4, 5, 7, 3)
    np.testing.assert_array_equal(got, expected.numpy())
    assert got[0, 0, :3, 0].tolist() == [0, 128, 255]


def test_png_gif_npy_encoders_round_trip():
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8, 1)
    rgb = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    g = Image.open(io.BytesIO(images.encode_png(grey)))
    assert g.mode == "L" and np.array_equal(np.asarray(g), grey[:, :, 0])
    c = Image.open(io.BytesIO(images.encode_png(rgb)))
    assert c.mode == "RGB" and np.array_equal(np.asarray(c), rgb)
    gif = Image.open(io.BytesIO(images.encode_gif(np.stack([rgb, 255 - rgb, rgb // 2]))))
    assert gif.format == "GIF" and gif.n_frames == 3
    arr = np.load(io.BytesIO(images.encode_npy(np.stack([rgb]))), allow_pickle=False)
    assert arr.dtype == np.uint8 and np.array_equal(arr[0], rgb)


def test_png_encoder_is_lossless_for_every_layout_and_filter():
    """Our PNG writer (images.encode_png) decodes, in Pillow, to the exact pixels: every channel
    count, odd and one-pixel sizes, and each of the filters it can choose."""
    rng = np.random.default_rng(2)
    ramp = np.tile(np.arange(40, dtype=np.uint8) * 6, (24, 1))
    cases = {
        "noise": rng.integers(0, 256, (23, 17, 3), dtype=np.uint8),  # None compresses best
        "horizontal ramp": np.repeat(ramp[:, :, None], 3, axis=2),  # Sub: constant differences
        "vertical ramp": np.repeat(ramp.T[:, :, None], 3, axis=2).copy(),  # Up
        "grey": rng.integers(0, 256, (5, 9, 1), dtype=np.uint8),
        "grey alpha": rng.integers(0, 256, (4, 4, 2), dtype=np.uint8),
        "rgba": rng.integers(0, 256, (3, 7, 4), dtype=np.uint8),
        "one pixel": np.array([[[7, 8, 9]]], dtype=np.uint8),
        "2-D grey": rng.integers(0, 256, (6, 5), dtype=np.uint8),
    }
    modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    for name, arr in cases.items():
        for level in (0, 1, 9):
            img = Image.open(io.BytesIO(images.encode_png(arr, level)))
            img.load()  # decodes the whole stream: a bad CRC or filter byte raises here
            want = arr if arr.ndim == 3 else arr[:, :, None]
            assert img.mode == modes[want.shape[2]], name
            got = np.asarray(img)
            np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=name)
    with pytest.raises(ValueError, match="shape"):
        images.encode_png(np.zeros((2, 2, 5), np.uint8))


def test_png_encoder_picks_the_filter_that_compresses_best():
    """The probe picks None for noise, Sub for a horizontal ramp, Up for a vertical one, read
    back from the first filter byte of the decompressed scanlines."""
    import zlib

    def first_filter(png: bytes) -> int:
        start = png.index(b"IDAT") + 4
        length = int.from_bytes(png[start - 8 : start - 4], "big")
        return zlib.decompress(png[start : start + length])[0]

    ramp = np.tile(np.arange(40, dtype=np.uint8) * 6, (24, 1))
    assert first_filter(images.encode_png(np.random.default_rng(0).integers(0, 256, (24, 40, 3), np.uint8))) == 0
    assert first_filter(images.encode_png(np.repeat(ramp[:, :, None], 3, axis=2))) == 1
    assert first_filter(images.encode_png(np.repeat(ramp.T[:, :, None], 3, axis=2).copy())) == 2


def test_decode_rejects_empty_garbage_and_truncated_bodies():
    for body, status, words in [
        (b"", 400, "empty"),
        (b"definitely not an image", 400, "not an image"),
        (_encode(Image.new("RGB", (64, 64), (9, 9, 9)))[:60], 400, "corrupt"),
    ]:
        with pytest.raises(ServingError) as e:
            images.decode_image(body, max_pixels=10_000)
        assert e.value.status == status and words in e.value.message


def test_decode_checks_pixels_from_the_header_before_decoding():
    bomb = _png_header_only(100_000, 100_000)  # 10 gigapixels declared in ~100 bytes
    with pytest.raises(ServingError) as e:
        images.decode_image(bomb, max_pixels=16_000_000)
    assert e.value.status == 413 and "pixels" in e.value.message  # PIL's own guard may answer first
    medium = _png_header_only(5000, 4000)  # under PIL's default guard, over ours
    with pytest.raises(ServingError) as e:
        images.decode_image(medium, max_pixels=16_000_000)
    assert e.value.status == 413 and "5000x4000" in e.value.message
    small = _encode(Image.new("L", (100, 101)))
    with pytest.raises(ServingError) as e:
        images.decode_image(small, max_pixels=100 * 100)
    assert e.value.status == 413
    assert images.decode_image(small, max_pixels=100 * 101).size == (100, 101)


def test_decode_applies_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    body = _encode(Image.new("RGB", (30, 20), (10, 200, 10)), "JPEG", exif=exif.tobytes())
    assert Image.open(io.BytesIO(body)).size == (30, 20)
    assert images.decode_image(body, max_pixels=10_000).size == (20, 30)


def test_to_mode_flattens_alpha_onto_white_and_converts_channels():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert np.asarray(images.to_mode(rgba, 3)).tolist()[0][0] == [255, 255, 255]
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.info["transparency"] = 0
    assert images.to_mode(pal, 3).getpixel((0, 0)) == (10, 20, 30)
    grey = Image.new("L", (4, 4), 77)
    assert images.to_mode(grey, 3).getpixel((0, 0)) == (77, 77, 77)
    assert images.to_mode(Image.new("RGB", (4, 4), (0, 255, 0)), 1).mode == "L"
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert images.to_mode(deep, 1).getpixel((0, 0)) == 255


def test_square_crops_the_centre_then_resizes():
    arr = np.zeros((10, 30), dtype=np.uint8)
    arr[:, 10:20] = 255  # the centre square is white, the sides black
    out = images.square(Image.fromarray(arr, "L"), 5)
    assert out.size == (5, 5) and np.asarray(out).min() == 255


def test_pil_to_array_is_nchw_in_minus_one_one():
    x = images.pil_to_array(Image.fromarray(np.array([[0, 255]], dtype=np.uint8), "L"))
    assert x.shape == (1, 1, 1, 2) and x.dtype == np.float32
    assert x.ravel().tolist() == [-1.0, 1.0]


def test_working_size_keeps_the_aspect_ratio():
    assert images.working_size(37, 23, 16) == (26, 16)
    assert images.working_size(23, 37, 16) == (16, 26)
    assert images.working_size(256, 256, 128) == (128, 128)


def test_pad_to_multiple_pads_bottom_right_only():
    x = np.arange(1 * 3 * 5 * 6, dtype=np.float32).reshape(1, 3, 5, 6)
    y = images.pad_to_multiple(x, 4)
    assert y.shape == (1, 3, 8, 8)
    np.testing.assert_array_equal(y[:, :, :5, :6], x)
    np.testing.assert_array_equal(y[:, :, 5, :6], x[:, :, 3, :])  # reflected
    tiny = np.ones((1, 3, 1, 2), dtype=np.float32)
    assert images.pad_to_multiple(tiny, 4).shape == (1, 3, 4, 4)  # too small to reflect: edge
    same = np.ones((1, 3, 4, 8), dtype=np.float32)
    assert images.pad_to_multiple(same, 4) is same
