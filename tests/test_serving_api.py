"""The service for real: ``bentoml serve`` on tiny ONNX models of every role (see conftest.py).

References are computed here with onnxruntime straight from the artifact files and the
seeding rule of docs/ARTIFACTS.md, so these tests check the contract, not the code's echo.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from serving.import_models import import_artifact

pytestmark = pytest.mark.slow

LATENT, SIZE, NOISE, LAYERS = 8, 8, 6, 4
SERVED = ["aae", "cgan", "cyclegan", "dcgan", "stylegan"]


# -- helpers --------------------------------------------------------------------------------
def get(srv, path: str, **params) -> httpx.Response:
    return httpx.get(srv.url + path, params=params, timeout=60)


def post(srv, path: str, params: dict | None = None, **kw) -> httpx.Response:
    return httpx.post(srv.url + path, params=params, timeout=60, **kw)


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def pixels(resp: httpx.Response) -> np.ndarray:
    """PNG response -> uint8 HWC."""
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    arr = np.asarray(Image.open(io.BytesIO(resp.content)))
    return arr[:, :, None] if arr.ndim == 2 else arr


def tiles_of(grid: np.ndarray, n: int, cols: int, size: int = SIZE, pad: int = 2) -> np.ndarray:
    """Cut a make_grid(padding=2) image back into its n tiles."""
    if n == 1:
        return grid[None]
    out = []
    for k in range(n):
        y, x = divmod(k, cols)
        top, left = pad + y * (size + pad), pad + x * (size + pad)
        out.append(grid[top : top + size, left : left + size])
    return np.stack(out)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip((x + 1) / 2 * 255 + 0.5, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def close(a: np.ndarray, b: np.ndarray, tol: int = 1) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= tol


def session(srv, key: str, role: str) -> ort.InferenceSession:
    path = srv.artifacts.dirs[key] / f"{role}.onnx"
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def draws(seed: int, index: int, names: tuple[str, ...] = ("z",)) -> dict[str, np.ndarray]:
    """The contract's seeding: default_rng([seed, index]), z then z2 then noise, float64 -> float32."""
    rng = np.random.default_rng([seed, index])
    sizes = {"z": LATENT, "z2": LATENT, "noise": NOISE}
    return {n: rng.standard_normal(sizes[n]).astype(np.float32) for n in names}


def error(resp: httpx.Response, status: int, *words: str) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error", "detail"}, body
    for w in words:
        assert w in body["error"], (w, body)
    return body


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring a huge image, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# -- discovery, system routes ---------------------------------------------------------------
def test_models_lists_the_latest_version_of_each_served_model(serving_server):
    srv = serving_server
    resp = get(srv, "/models")
    assert resp.status_code == 200
    models = {m["name"]: m for m in resp.json()}
    assert sorted(models) == SERVED  # hidden: not in GANZOO_MODELS; broken, ghost: failed to load
    dcgan = models["dcgan"]
    v2 = json.loads((srv.artifacts.dirs["dcgan-v2"] / "card.json").read_text())
    assert f"dcgan:{dcgan['version']}" == srv.tags["dcgan-v2"] != srv.tags["dcgan"]
    assert dcgan["sha256"] == v2["sha256"] and dcgan["metrics"] == {"fid": 12.5}
    assert dcgan["capabilities"] == ["generate", "interpolate"] and dcgan["channels"] == 1
    assert all(m["provider"] == "CPUExecutionProvider" for m in models.values())
    assert models["cgan"]["classes"] == ["zero", "one", "two"] and models["cgan"]["conditional"] is True
    sg = models["stylegan"]
    assert sg["roles"] == ["generator", "mapping", "synthesis"] and sg["psi"] is True and sg["style_layers"] == LAYERS
    assert "mix" in sg["capabilities"]
    cg = models["cyclegan"]
    assert cg["domains"] == ["apple", "orange"] and cg["directions"] == ["apple2orange", "orange2apple"]
    assert models["aae"]["capabilities"] == ["generate", "interpolate", "encode", "reconstruct"]


def test_server_log_names_the_provider_and_the_broken_models(serving_server):
    log = serving_server.log_text()
    assert "-> ['CPUExecutionProvider']" in log
    assert "model broken:" in log and "model ghost:" in log and "failed to load" in log
    assert "generator.onnx is missing" in log


def test_bentoml_system_routes_are_not_shadowed(serving_server):
    for path in ("/readyz", "/livez"):
        assert get(serving_server, path).status_code == 200
    metrics = get(serving_server, "/metrics")
    assert metrics.status_code == 200 and "bentoml_service_request" in metrics.text
    assert get(serving_server, "/no-such-route").status_code == 404


def test_openapi_lists_every_route_once_with_both_methods_and_our_title(serving_server):
    spec = get(serving_server, "/docs.json").json()
    assert spec["info"]["title"] == "ganzoo" and spec["info"]["version"] not in ("None", "")
    assert "BentoML" not in json.dumps(spec["info"])
    assert "[/ui](/ui)" in spec["info"]["description"]  # the page at / links the gallery
    paths = spec["paths"]
    for path in ("/generate", "/interpolate", "/mix", "/models"):  # curl GET + typed BentoML POST
        assert {"get", "post"} <= set(paths[path]), path
    for path in ("/api/encode", "/api/reconstruct", "/api/translate", "/encode", "/reconstruct", "/translate"):
        assert "post" in paths[path], path
    body = paths["/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "n", "seed", "label", "psi"} <= set(body["properties"])
    assert set(paths["/translate"]["post"]["requestBody"]["content"]) >= {"image/png", "multipart/form-data"}
    assert "multipart/form-data" in paths["/api/translate"]["post"]["requestBody"]["content"]
    media = paths["/generate"]["get"]["responses"]["200"]["content"]
    assert {"image/png", "application/octet-stream", "application/json"} <= set(media)
    assert {"image/png", "image/gif"} <= set(paths["/interpolate"]["get"]["responses"]["200"]["content"])
    assert "503" in paths["/generate"]["get"]["responses"]
    schemas = spec["components"]["schemas"]
    assert {"ModelInfo", "ErrorResponse", "EncodeResponse"} <= set(schemas)


# -- generate -------------------------------------------------------------------------------
def test_generate_png_grid_layout_and_seed_echo(serving_server):
    resp = get(serving_server, "/generate", model="dcgan", n=5, seed=7)
    grid = pixels(resp)
    assert resp.headers["x-seed"] == "7"
    assert grid.shape == (2 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2, 1)  # ceil(sqrt(5)) = 3 per row
    assert not grid[:2].any() and not grid[:, :2].any()  # padding
    assert not grid[SIZE + 4 :, 2 * (SIZE + 2) :].any()  # the 6th cell of the 3x2 grid is empty
    assert grid[SIZE + 4 :, SIZE + 4 : 2 * SIZE + 4].any()  # the 5th is not
    again = get(serving_server, "/generate", model="dcgan", n=5, seed=7)
    assert again.content == resp.content
    assert get(serving_server, "/generate", model="dcgan", n=5, seed=8).content != resp.content


def test_generate_without_seed_picks_and_echoes_one(serving_server):
    a = get(serving_server, "/generate", model="dcgan", n=2)
    b = get(serving_server, "/generate", model="dcgan", n=2)
    assert a.status_code == b.status_code == 200
    seed_a = int(a.headers["x-seed"])
    assert a.content != b.content or seed_a == int(b.headers["x-seed"])
    assert get(serving_server, "/generate", model="dcgan", n=2, seed=seed_a).content == a.content


def test_generated_tiles_follow_the_seeding_contract(serving_server):
    srv = serving_server
    resp = get(srv, "/generate", model="dcgan", n=4, seed=11, format="npy")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["x-seed"] == "11"
    tiles = np.load(io.BytesIO(resp.content), allow_pickle=False)
    assert tiles.dtype == np.uint8 and tiles.shape == (4, SIZE, SIZE, 1)  # NHWC
    z = np.stack([draws(11, i)["z"] for i in range(4)])
    expected = to_uint8(session(srv, "dcgan-v2", "generator").run(None, {"z": z})[0])  # the latest version
    assert close(tiles, expected)
    # the PNG is exactly these tiles on the torchvision grid
    grid = pixels(get(srv, "/generate", model="dcgan", n=4, seed=11))
    np.testing.assert_array_equal(tiles_of(grid, 4, 2), tiles)
    # a tile depends on (seed, index) only, not on n
    first3 = np.load(io.BytesIO(get(srv, "/generate", model="dcgan", n=3, seed=11, format="npy").content))
    assert close(first3, tiles[:3])


def test_generate_json_holds_the_same_tiles(serving_server):
    js = get(serving_server, "/generate", model="cgan", n=3, seed=2, format="json")
    assert js.status_code == 200 and js.headers["x-seed"] == "2"
    body = js.json()
    assert body["layout"] == "NHWC" and body["shape"] == [3, SIZE, SIZE, 3] and body["seed"] == 2
    npy = np.load(io.BytesIO(get(serving_server, "/generate", model="cgan", n=3, seed=2, format="npy").content))
    np.testing.assert_array_equal(np.array(body["images"], dtype=np.uint8), npy)


def test_conditional_labels_default_to_rows_or_follow_the_request(serving_server):
    srv = serving_server
    gen = session(srv, "cgan", "generator")
    z = np.stack([draws(5, i)["z"] for i in range(6)])
    rows = np.load(io.BytesIO(get(srv, "/generate", model="cgan", n=6, seed=5, format="npy").content))
    assert close(rows, to_uint8(gen.run(None, {"z": z, "label": np.arange(6) % 3})[0]))
    twos = np.load(io.BytesIO(get(srv, "/generate", model="cgan", n=6, seed=5, label=2, format="npy").content))
    assert close(twos, to_uint8(gen.run(None, {"z": z, "label": np.full(6, 2)})[0]))
    assert close(twos[2], rows[2]) and not close(twos[0], rows[0])


def test_psi_changes_stylegan_samples_and_defaults_to_one(serving_server):
    srv = serving_server
    base = get(srv, "/generate", model="stylegan", n=4, seed=3)
    assert pixels(base).shape[2] == 3
    assert get(srv, "/generate", model="stylegan", n=4, seed=3, psi=1.0).content == base.content
    assert get(srv, "/generate", model="stylegan", n=4, seed=3, psi=0.0).content != base.content
    # generator inputs are filled by name and drawn z, z2, noise in that order
    tiles = np.load(io.BytesIO(get(srv, "/generate", model="stylegan", n=2, seed=3, psi=0.5, format="npy").content))
    d = [draws(3, i, ("z", "z2", "noise")) for i in range(2)]
    feeds = {k: np.stack([t[k] for t in d]) for k in ("z", "z2", "noise")}
    feeds.update(psi=np.array(0.5, np.float32), crossover=np.array(-1, np.int64))
    assert close(tiles, to_uint8(session(srv, "stylegan", "generator").run(None, feeds)[0]))


def test_post_generate_matches_get_and_works_with_the_bentoml_client(serving_server):
    import bentoml

    srv = serving_server
    get_png = get(srv, "/generate", model="cgan", n=4, seed=9, label=1)
    resp = post(srv, "/generate", json={"model": "cgan", "n": 4, "seed": 9, "label": 1})
    assert resp.status_code == 200 and resp.headers["x-seed"] == "9"
    assert resp.content == get_png.content
    with bentoml.SyncHTTPClient(srv.url, timeout=60) as client:
        img = client.generate(model="cgan", n=4, seed=9, label=1)
    assert isinstance(img, Image.Image)
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), pixels(get_png))


# -- interpolate, mix -----------------------------------------------------------------------
@pytest.mark.parametrize("model", ["dcgan", "stylegan"])
def test_interpolation_strip_runs_from_seed_a_to_seed_b(serving_server, model):
    srv = serving_server
    resp = get(srv, "/interpolate", model=model, seed_a=1, seed_b=2, steps=5)
    strip = pixels(resp)
    assert strip.shape[:2] == (SIZE + 4, 5 * (SIZE + 2) + 2)
    assert resp.headers["x-seed-a"] == "1" and resp.headers["x-seed-b"] == "2"
    frames = tiles_of(strip, 5, 5)
    start = pixels(get(srv, "/generate", model=model, n=1, seed=1))
    assert close(frames[0], start)  # stylegan: through mapping/synthesis, same image as the generator
    if model == "dcgan":  # z path: slerp ends exactly on z_b
        assert close(frames[-1], pixels(get(srv, "/generate", model=model, n=1, seed=2)))
    assert not close(frames[1], frames[3], tol=0)
    gif = get(srv, "/interpolate", model=model, seed_a=1, seed_b=2, steps=5, format="gif")
    assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    assert Image.open(io.BytesIO(gif.content)).n_frames == 5


def test_interpolation_in_w_is_linear(serving_server):
    srv = serving_server
    mapping, synthesis = session(srv, "stylegan", "mapping"), session(srv, "stylegan", "synthesis")
    d1, d2 = draws(1, 0, ("z", "z2", "noise")), draws(2, 0, ("z", "z2", "noise"))
    w = mapping.run(None, {"z": np.stack([d1["z"], d2["z"]]), "psi": np.array(1.0, np.float32)})[0]
    ws = np.stack([(1 - t) * w[0] + t * w[1] for t in np.linspace(0, 1, 3)]).astype(np.float32)
    expected = to_uint8(synthesis.run(None, {"w": ws, "noise": np.stack([d1["noise"]] * 3)})[0])
    got = tiles_of(pixels(get(srv, "/interpolate", model="stylegan", seed_a=1, seed_b=2, steps=3)), 3, 3)
    assert close(got, expected)


def test_style_mixing_grid(serving_server):
    srv = serving_server
    seeds, styles, k = [1, 2], [3, 4, 5], 1
    grid = pixels(get(srv, "/mix", model="stylegan", seeds="1,2", styles="3,4,5", crossover=k))
    cols, rows = len(styles) + 1, len(seeds) + 1
    assert grid.shape == (rows * (SIZE + 2) + 2, cols * (SIZE + 2) + 2, 3)
    tiles = tiles_of(grid, rows * cols, cols)
    assert not tiles[0].any()  # blank corner
    for c, s in enumerate(styles, start=1):  # top row: the style sources as generated alone
        assert close(tiles[c], pixels(get(srv, "/generate", model="stylegan", n=1, seed=s)))
    gen = session(srv, "stylegan", "generator")
    for r, content in enumerate(seeds, start=1):
        assert close(tiles[r * cols], pixels(get(srv, "/generate", model="stylegan", n=1, seed=content)))
        for c, style in enumerate(styles, start=1):
            dc, ds = draws(content, 0, ("z", "z2", "noise")), draws(style, 0, ("z",))
            feeds = {
                "z": dc["z"][None],
                "z2": ds["z"][None],
                "noise": dc["noise"][None],
                "psi": np.array(1.0, np.float32),
                "crossover": np.array(k, np.int64),
            }
            assert close(tiles[r * cols + c], to_uint8(gen.run(None, feeds)[0])[0])
    default = get(srv, "/mix", model="stylegan", seeds="1,2", styles="3,4,5")
    assert default.content == get(srv, "/mix", model="stylegan", seeds="1,2", styles="3,4,5", crossover=2).content


# -- images in ------------------------------------------------------------------------------
def _aae_reference(srv, img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    x = (np.asarray(img.convert("L"), dtype=np.float32) / 127.5 - 1)[None, None]
    code = session(srv, "aae", "encoder").run(None, {"image": x})[0]
    return code[0], to_uint8(session(srv, "aae", "generator").run(None, {"z": code})[0])[0]


def test_encode_and_reconstruct_raw_or_multipart(serving_server):
    srv = serving_server
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE), dtype=np.uint8), "L")
    code, recon = _aae_reference(srv, img)
    body = encode(img)
    enc = post(srv, "/encode", {"model": "aae"}, content=body, headers={"content-type": "image/png"})
    assert enc.status_code == 200 and enc.json()["model"] == "aae"
    np.testing.assert_allclose(enc.json()["code"], code, atol=1e-5)
    raw = post(srv, "/reconstruct", {"model": "aae"}, content=body, headers={"content-type": "image/png"})
    multi = post(srv, "/reconstruct", {"model": "aae"}, files={"image": ("x.png", body, "image/png")})
    assert close(pixels(raw), recon[:, :, :]) and raw.content == multi.content
    big = encode(Image.new("RGB", (300, 200), (250, 10, 10)), "JPEG")  # any size, colour: cropped, grey
    assert pixels(post(srv, "/reconstruct", {"model": "aae"}, files={"image": ("a.jpg", big)})).shape == (8, 8, 1)


def test_translate_is_the_graph_at_working_resolution_and_keeps_the_size(serving_server):
    srv = serving_server
    arr = np.random.default_rng(1).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    body = encode(Image.fromarray(arr, "RGB"))
    # size=6: no resize, padded 6x10 -> 8x12 (the graph fails unless H, W are multiples of 4)
    out = pixels(
        post(
            srv,
            "/translate",
            {"direction": "apple2orange", "size": 6},
            content=body,
            headers={"content-type": "image/png"},
        )
    )
    assert close(out, 255 - arr)  # a2b of the tiny cyclegan is x -> -x
    back = pixels(
        post(
            srv,
            "/translate",
            {"model": "cyclegan", "direction": "orange2apple", "size": 6},
            files={"image": ("x.png", body, "image/png")},
        )
    )
    expected = np.clip((arr / 127.5 - 1) * 0.5 * 127.5 + 127.5 + 0.5, 0, 255).astype(np.uint8)  # b2a: x -> x/2
    assert close(back, expected)
    photo = encode(Image.new("RGB", (37, 23), (200, 120, 30)), "JPEG", quality=95)
    resp = post(srv, "/translate", {"direction": "apple2orange"}, content=photo, headers={"content-type": "image/jpeg"})
    assert pixels(resp).shape == (23, 37, 3)  # default working size (8) and back to the input's size


def test_translate_honours_exif_and_converts_any_mode(serving_server):
    srv = serving_server
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    rotated = encode(Image.new("RGB", (30, 20), (10, 200, 10)), "JPEG", exif=exif.tobytes())
    assert pixels(
        post(srv, "/translate", {"direction": "apple2orange"}, files={"image": ("r.jpg", rotated)})
    ).shape == (30, 20, 3)
    pal = Image.new("P", (12, 9), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    for img in (Image.new("RGBA", (12, 9), (0, 0, 0, 0)), Image.new("L", (12, 9), 0), pal):
        out = pixels(post(srv, "/translate", {"direction": "apple2orange"}, files={"image": ("i.png", encode(img))}))
        assert out.shape == (9, 12, 3)
    white = pixels(
        post(
            srv,
            "/translate",
            {"direction": "apple2orange", "size": 8},
            files={"image": ("t.png", encode(Image.new("RGBA", (12, 8), (0, 0, 0, 0))))},
        )
    )
    assert white.max() <= 1  # transparent -> white -> negated to black


# -- every bad input: a 4xx JSON error naming the problem -----------------------------------
GET_ERRORS = [
    ("/generate", {"model": "nope"}, 404, ["unknown model 'nope'", "dcgan"]),
    ("/generate", {"model": "broken"}, 404, ["failed to load"]),
    ("/generate", {"model": "hidden"}, 404, ["unknown model"]),
    ("/generate", {"model": "dcgan", "n": 0}, 422, ["n must be in 1..256"]),
    ("/generate", {"model": "dcgan", "n": 257}, 422, ["n must be in 1..256"]),
    ("/generate", {"model": "dcgan", "n": "four"}, 422, ["n"]),
    ("/generate", {"model": "dcgan", "seed": "x"}, 422, ["seed"]),
    ("/generate", {"model": "dcgan", "seed": -1}, 422, ["seed must be in"]),
    ("/generate", {"model": "dcgan", "format": "bmp"}, 422, ["format"]),
    ("/generate", {}, 422, ["model= is required"]),
    ("/generate", {"model": "cyclegan"}, 400, ["cannot generate"]),
    ("/generate", {"model": "cgan", "label": 3}, 422, ["0..2"]),
    ("/generate", {"model": "cgan", "label": -1}, 422, ["0..2"]),
    ("/generate", {"model": "dcgan", "label": 0}, 400, ["not conditional"]),
    ("/generate", {"model": "stylegan", "psi": 2.5}, 422, ["psi must be in [0, 2]"]),
    ("/generate", {"model": "stylegan", "psi": -0.1}, 422, ["psi must be in [0, 2]"]),
    ("/generate", {"model": "dcgan", "psi": 1}, 400, ["psi"]),
    ("/interpolate", {"model": "dcgan", "steps": 1}, 422, ["steps"]),
    ("/interpolate", {"model": "cyclegan"}, 400, ["cannot interpolate"]),
    ("/interpolate", {"model": "dcgan", "seed_a": "a"}, 422, ["seed_a"]),
    ("/mix", {"model": "dcgan"}, 400, ["cannot mix", "z2/crossover"]),
    ("/mix", {"model": "stylegan", "seeds": "1,x"}, 422, ["seeds"]),
    ("/mix", {"model": "stylegan", "crossover": 9}, 422, ["crossover must be in 0..4"]),
    ("/mix", {"model": "stylegan", "styles": ",".join(map(str, range(17)))}, 422, ["styles"]),
]


@pytest.mark.parametrize("path, params, status, words", GET_ERRORS)
def test_bad_get_requests(serving_server, path, params, status, words):
    error(get(serving_server, path, **params), status, *words)


def test_bad_post_generate_requests(serving_server):
    srv = serving_server
    error(post(srv, "/generate", json={"model": "nope"}), 404, "unknown model")
    error(post(srv, "/generate", json={"model": "dcgan", "n": 999}), 422, "n must be in")
    error(post(srv, "/generate", json={"model": "stylegan", "psi": 3}), 422, "psi")
    error(post(srv, "/generate", json={"model": "dcgan", "n": "x"}), 400, "validation error")
    error(post(srv, "/generate", json={"model": "dcgan", "colour": "red"}), 400, "validation error")
    error(post(srv, "/generate", content=b"{not json", headers={"content-type": "application/json"}), 400)


def test_bad_image_uploads(serving_server):
    srv = serving_server
    png = {"content-type": "image/png"}
    ok = encode(Image.new("RGB", (12, 8)))
    big = bytes(3_100_000)

    def chunked(data: bytes):  # no Content-Length: the limit must hold while streaming
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    noisy = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    cases = [
        (post(srv, "/translate", {"direction": "apple2orange"}, content=b"", headers=png), 400, ["empty"]),
        (post(srv, "/translate", {"direction": "apple2orange"}, content=b"hello", headers=png), 400, ["not an image"]),
        (
            post(srv, "/translate", {"direction": "apple2orange"}, content=noisy[: len(noisy) // 2], headers=png),
            400,
            ["corrupt or truncated"],
        ),
        (
            post(srv, "/translate", {"direction": "apple2orange"}, content=ok, headers={"content-type": "text/plain"}),
            415,
            ["text/plain"],
        ),
        (post(srv, "/translate", {"direction": "apple2orange"}, files={"picture": ("x.png", ok)}), 400, ["'image'"]),
        (
            post(srv, "/encode", {"model": "aae"}, content=ok, headers={"content-type": "multipart/form-data"}),
            400,
            ["malformed multipart"],
        ),
        (
            post(
                srv,
                "/encode",
                {"model": "aae"},
                content=b"--x\r\ngarbage",
                headers={"content-type": "multipart/form-data; boundary=x"},
            ),
            400,
            ["multipart"],
        ),
        (post(srv, "/encode", {"model": "aae"}, files={"image": ("x.txt", b"plain text")}), 400, ["not an image"]),
        (
            post(srv, "/translate", {"direction": "pear2apple"}, content=ok, headers=png),
            422,
            ["unknown direction 'pear2apple'", "apple2orange"],
        ),
        (
            post(srv, "/translate", {"model": "cyclegan", "direction": "x2y"}, content=ok, headers=png),
            422,
            ["orange2apple"],
        ),
        (post(srv, "/translate", {"model": "dcgan"}, content=ok, headers=png), 400, ["cannot translate"]),
        (post(srv, "/translate", {"direction": "apple2orange", "size": 1}, content=ok, headers=png), 422, ["size"]),
        (post(srv, "/translate", {"direction": "apple2orange", "size": "big"}, content=ok, headers=png), 422, ["size"]),
        (
            post(srv, "/reconstruct", {"model": "dcgan"}, content=ok, headers=png),
            400,
            ["cannot reconstruct", "encoder"],
        ),
        (post(srv, "/encode", {"model": "cgan"}, content=ok, headers=png), 400, ["cannot encode", "encoder"]),
        (post(srv, "/encode", {"model": "nope"}, content=ok, headers=png), 404, ["unknown model"]),
        (post(srv, "/reconstruct", {"model": "aae", "label": 1}, content=ok, headers=png), 400, ["not conditional"]),
        # GANZOO_MAX_PIXELS=1_000_000 and GANZOO_MAX_BYTES=3_000_000 on this server
        (post(srv, "/translate", {"direction": "apple2orange"}, content=big, headers=png), 413, ["3000000"]),
        (post(srv, "/encode", {"model": "aae"}, content=chunked(big), headers=png), 413, ["3000000"]),
        (post(srv, "/encode", {"model": "aae"}, files={"image": ("big.png", big)}), 413, ["3000000"]),
        (
            post(
                srv,
                "/translate",
                {"direction": "apple2orange"},
                content=encode(Image.new("L", (1100, 1000))),
                headers=png,
            ),
            413,
            ["1100x1000"],
        ),
        (post(srv, "/encode", {"model": "aae"}, content=bomb_png(100_000, 100_000), headers=png), 413, ["pixels"]),
    ]
    for resp, status, words in cases:
        error(resp, status, *words)


def test_the_server_survives_and_nothing_stored_was_lost(serving_server):
    srv = serving_server
    assert get(srv, "/readyz").status_code == 200
    assert srv.store_now() == srv.stored  # serving wrote, moved and deleted nothing in the store
    again = import_artifact(srv.artifacts.dirs["dcgan-v2"], home=srv.home)  # same sha: skipped
    assert again == srv.tags["dcgan-v2"] and srv.store_now() == srv.stored
    for tag in srv.tags.values():  # every version imported, including the superseded dcgan v1
        name, version = tag.split(":")
        assert f"{name}/{version}/model.yaml" in srv.stored
