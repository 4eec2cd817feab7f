"""Cost bounds and hostile images in the pure serving modules, on the shipped models.

Real ONNX Runtime sessions of serving/pretrained/cyclegan (translate) and aae (encode,
reconstruct): every image mode Pillow opens converts or gets a 4xx, tiny working sizes
work, and working/output pixels are capped with a 413 naming the limit and its setting.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serving import images
from serving.config import Settings
from serving.errors import ServingError
from serving.import_models import PRETRAINED, import_artifact
from serving.runtime import GanModel, load_model
from serving.store import load_served, model_store

CPU = ["CPUExecutionProvider"]


def _load(name: str) -> GanModel:
    path = PRETRAINED / name
    return load_model(name, "v", path, json.loads((path / "card.json").read_text()), CPU, 1)


@pytest.fixture(scope="module")
def cyclegan() -> GanModel:
    return _load("cyclegan")


@pytest.fixture(scope="module")
def aae() -> GanModel:
    return _load("aae")


def _gradient(mode: str, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A non-constant image in ``mode`` (via RGB where Pillow can, else from raw values)."""
    w, h = size
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
    rgb[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    base = Image.fromarray(rgb, "RGB")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257).convert(mode)
    if mode == "F":
        return Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0, "F")
    if mode == "La":
        return base.convert("LA").convert("La")
    return base.convert(mode)


MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
         "I", "I;16", "I;16L", "I;16B", "I;16N", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_translates_encodes_and_reconstructs(mode: str, cyclegan: GanModel, aae: GanModel):
    img = _gradient(mode)
    assert img.mode == mode
    out = cyclegan.translate(img, "apple2orange")
    assert out.mode == "RGB" and out.size == img.size
    code = aae.encode(img)
    assert code.shape == (aae.latent_dim,) and np.isfinite(code).all()
    assert aae.reconstruct(img).shape == (aae.image_size, aae.image_size, 1)


def test_conversions_keep_the_picture():
    """Values survive the conversion: not a clip to black or white, not raw channel copies."""
    lab_white = Image.new("LAB", (2, 2), (255, 128, 128))
    assert min(images.to_mode(lab_white, 1).getpixel((0, 0)), *images.to_mode(lab_white, 3).getpixel((0, 0))) >= 250
    assert images.to_mode(Image.new("HSV", (2, 2), (0, 255, 255)), 3).getpixel((0, 0)) == (255, 0, 0)
    assert images.to_mode(Image.new("F", (2, 2), 0.5), 1).getpixel((0, 0)) in (127, 128)
    assert images.to_mode(Image.new("F", (2, 2), 200.0), 1).getpixel((0, 0)) == 200  # not [0, 1]: taken as 0..255
    assert images.to_mode(Image.new("F", (2, 2), float("nan")), 1).getpixel((0, 0)) == 0
    assert images.to_mode(Image.new("I;16", (2, 2), 65535), 1).getpixel((0, 0)) == 255
    assert images.to_mode(Image.new("CMYK", (2, 2), (0, 0, 0, 0)), 3).getpixel((0, 0)) == (255, 255, 255)
    la = Image.new("LA", (2, 2), (100, 0)).convert("La")  # fully transparent: white
    assert images.to_mode(la, 1).getpixel((0, 0)) == 255


def _encoded(mode: str, fmt: str) -> bytes:
    img = _gradient(mode, (33, 21))
    if mode == "P":
        img.info["transparency"] = 0
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    "mode, fmt",
    [("LAB", "TIFF"), ("CMYK", "TIFF"), ("CMYK", "JPEG"), ("YCbCr", "TIFF"), ("F", "TIFF"), ("I;16", "TIFF"),
     ("I;16", "PNG"), ("I", "TIFF"), ("1", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("RGBA", "TIFF"), ("L", "JPEG")],
)
def test_uploaded_files_of_every_mode_decode_and_run(mode: str, fmt: str, cyclegan: GanModel, aae: GanModel):
    img = images.decode_image(_encoded(mode, fmt), 1_000_000)
    assert img.size == (33, 21)
    assert cyclegan.translate_array(img, "orange2apple").shape == (21, 33, 3)
    assert aae.encode(img).shape == (aae.latent_dim,)


@pytest.mark.parametrize("size, shape", [(4, (30, 40)), (4, (64, 5)), (5, (7, 9)), (8, (64, 64))])
def test_tiny_working_sizes_work(cyclegan: GanModel, size: int, shape: tuple[int, int]):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8))
    out = cyclegan.translate_array(img, "apple2orange", size)
    assert out.shape == (*shape, 3)


def test_padding_up_to_a_minimum():
    assert images.padded_size(4, 51, 4, 64) == (64, 64)
    assert images.padded_size(70, 3, 4, 64) == (72, 64)
    x = np.arange(2 * 3, dtype=np.float32).reshape(1, 1, 2, 3)
    y = images.pad_to_multiple(x, 4, 8)
    assert y.shape == (1, 1, 8, 8) and (y[:, :, :2, :3] == x).all() and y[0, 0, 7, 7] == x[0, 0, 1, 2]


def test_working_pixels_are_capped_with_the_setting_named(cyclegan: GanModel):
    img = Image.new("RGB", (400, 200))
    assert cyclegan.image_size == 128  # the working image is padded to at least 128 px per side
    cyclegan.max_work_pixels = 20_000
    try:
        with pytest.raises(ServingError) as e:
            cyclegan.translate(img, "apple2orange", 128)  # working image 256x128 = 32768 pixels
        assert e.value.status == 413
        assert "working image would be 256x128 = 32768 pixels, over the limit of 20000" in e.value.message
        assert "GANZOO_MAX_WORK_PIXELS" in e.value.message
        assert e.value.detail == {"pixels": 32768, "limit": 20_000, "setting": "GANZOO_MAX_WORK_PIXELS"}
        hint = int(e.value.message.rsplit("at most ", 1)[1].split()[0])
        assert hint == 78  # 156x78, padded to 156x128 = 19968; 79 pads to 160x128 = 20480
        assert cyclegan.translate(img, "apple2orange", hint).size == (400, 200)  # the hinted size fits
        with pytest.raises(ServingError, match="GANZOO_MAX_WORK_PIXELS"):
            cyclegan.translate(img, "apple2orange", hint + 1)
        with pytest.raises(ServingError, match="working image would be 512x256 = 131072"):  # default: up to 256
            cyclegan.translate(Image.new("RGB", (4000, 2000)), "apple2orange")
        cyclegan.max_work_pixels = 8000  # under the model's own 128x128: no size fits, and the error says why
        with pytest.raises(ServingError, match="no size= fits, the working image is padded to the model's 128 px"):
            cyclegan.translate(img, "apple2orange", 64)
    finally:
        cyclegan.max_work_pixels = Settings.max_work_pixels


def test_output_pixels_are_capped_with_the_setting_named(cyclegan: GanModel, aae: GanModel):
    cyclegan.max_output_pixels = aae.max_output_pixels = 10_000
    try:
        with pytest.raises(ServingError, match=r"output would be 101x100 = 10100 pixels, over the limit of 10000 "
                                               r"\(GANZOO_MAX_OUTPUT_PIXELS\)") as e:
            cyclegan.translate(Image.new("RGB", (101, 100)), "apple2orange", 8)
        assert e.value.status == 413
        assert cyclegan.translate(Image.new("RGB", (100, 100)), "apple2orange", 8).size == (100, 100)
        # aae tiles are 32x32 = 1024 pixels: 9 fit in 10000, 10 do not
        assert aae.generate(9, 0).shape[0] == 9
        with pytest.raises(ServingError, match="output would be 10 tiles of 32x32 = 10240 pixels") as e:
            aae.generate(10, 0)
        assert e.value.status == 413 and e.value.detail["setting"] == "GANZOO_MAX_OUTPUT_PIXELS"
        with pytest.raises(ServingError, match="GANZOO_MAX_OUTPUT_PIXELS"):
            aae.interpolate(1, 2, 10)
    finally:
        cyclegan.max_output_pixels = aae.max_output_pixels = Settings.max_output_pixels


def test_settings_reach_the_loaded_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    import_artifact(PRETRAINED / "cyclegan", home=home)
    monkeypatch.setenv("GANZOO_MAX_WORK_PIXELS", "5000")
    monkeypatch.setenv("GANZOO_MAX_OUTPUT_PIXELS", "7000")
    served, _ = load_served(CPU, store=model_store(home))
    assert (served["cyclegan"].max_work_pixels, served["cyclegan"].max_output_pixels) == (5000, 7000)
    with pytest.raises(ValueError, match="GANZOO_MAX_WORK_PIXELS must be an integer"):
        Settings.from_env({"GANZOO_MAX_WORK_PIXELS": "lots"})
    assert Settings.from_env({}).max_work_pixels == 2048 * 2048


def test_sessions_run_without_the_cpu_memory_arena(cyclegan: GanModel):
    """The arena keeps a big request's peak for the process's life; it is off on every session."""
    for graph in cyclegan.graphs.values():
        assert graph.session.get_session_options().enable_cpu_mem_arena is False


def test_translate_defaults_to_the_inputs_resolution_up_to_the_cap(tmp_path):
    """No size=: the input's shorter side up to GANZOO_TRANSLATE_SIZE, never below the model's size."""
    import json

    from conftest import write_artifact
    from PIL import Image as PILImage

    from serving.runtime import load_model

    art = write_artifact(tmp_path / "cyclegan", "cyclegan")
    model = load_model("cyclegan", "v", art, json.loads((art / "card.json").read_text()), ["CPUExecutionProvider"], 1)
    rng = np.random.default_rng(0)
    photo = PILImage.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    default = np.asarray(model.translate(photo, "a2b"))
    assert np.array_equal(default, np.asarray(model.translate(photo, "a2b", 30)))  # its own 30 px
    assert not np.array_equal(default, np.asarray(model.translate(photo, "a2b", 8)))  # not the model's 8 px
    model.translate_size = 16
    assert np.array_equal(np.asarray(model.translate(photo, "a2b")), np.asarray(model.translate(photo, "a2b", 16)))
