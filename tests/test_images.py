"""Loading images for Grad-CAM: every format and colour mode people upload, and every bad file.

Each case is made here with Pillow, so the expected RGB values are known exactly.
"""

import io
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from explorer.data.images import (
    MAX_PIXELS,
    MIN_SIDE,
    SAMPLE_PHOTOS,
    SUPPORTED_FORMATS,
    ImageError,
    load_image,
    load_image_with_notes,
    sample_photo,
)

# Not square, so a transposed result cannot pass for a right one.
HEIGHT, WIDTH = 24, 40
RED = (220, 30, 40)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def solid(mode: str, colour) -> Image.Image:
    return Image.new(mode, (WIDTH, HEIGHT), colour)


def noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def gradient() -> np.ndarray:
    """Smooth, so JPEG keeps it within a few levels."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    red, green = x * 255 / (WIDTH - 1), y * 255 / (HEIGHT - 1)
    return np.stack([red, green, (red + green) / 2], axis=2).astype(np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A 1-bit greyscale PNG written by hand: a huge blank one compresses to a few tens of KB."""
    if idat is None:
        compressor = zlib.compressobj(6)
        row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the row's bits
        idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def close(array: np.ndarray, colour, tolerance: int) -> bool:
    return np.abs(array.astype(int) - np.array(colour)).max() <= tolerance


# --- formats and colour modes -------------------------------------------------------------------


@pytest.mark.parametrize("fmt, options", [
    ("PNG", {}), ("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}), ("WEBP", {"lossless": True}),
])
def test_lossless_formats_round_trip_exactly(fmt, options):
    pixels = noise()
    array, notes = load_image_with_notes(encode(Image.fromarray(pixels), fmt, **options))
    assert array.dtype == np.uint8 and array.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(array, pixels)
    assert notes == []


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_lossy_formats_round_trip_within_tolerance(fmt):
    pixels = gradient()
    array = load_image(encode(Image.fromarray(pixels), fmt, quality=95))
    assert array.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(array.astype(int) - pixels).mean() < 3


def _lab(rgb) -> Image.Image:
    transform = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    return ImageCms.applyTransform(solid("RGB", rgb), transform)


def _palette(colour) -> Image.Image:
    image = Image.new("P", (WIDTH, HEIGHT), 1)
    image.putpalette([0, 0, 0, *colour] + [0] * 762)
    return image


# (format, image, expected RGB everywhere, tolerance, a word the notes must hold or None for no notes)
MODE_CASES = {
    "png-L": ("PNG", solid("L", 77), (77, 77, 77), 0, None),
    "png-1": ("PNG", solid("1", 1), (255, 255, 255), 0, None),
    "png-P": ("PNG", _palette(RED), RED, 0, None),
    "png-LA-opaque": ("PNG", solid("LA", (90, 255)), (90, 90, 90), 0, None),
    "png-RGBA-opaque": ("PNG", solid("RGBA", (*RED, 255)), RED, 0, None),
    "bmp-L": ("BMP", solid("L", 200), (200, 200, 200), 0, None),
    "bmp-P": ("BMP", _palette(RED), RED, 0, None),
    "bmp-1": ("BMP", solid("1", 0), (0, 0, 0), 0, None),
    "gif-P": ("GIF", _palette(RED), RED, 0, None),
    "gif-L": ("GIF", solid("L", 120), (120, 120, 120), 0, None),
    "tiff-L": ("TIFF", solid("L", 33), (33, 33, 33), 0, None),
    "tiff-RGBA-opaque": ("TIFF", solid("RGBA", (*RED, 255)), RED, 0, None),
    "tiff-CMYK": ("TIFF", solid("CMYK", (0, 255, 255, 0)), (255, 0, 0), 0, "CMYK"),
    "tiff-YCbCr": ("TIFF", solid("RGB", (255, 0, 0)).convert("YCbCr"), (255, 0, 0), 3, None),
    "tiff-LAB": ("TIFF", _lab(RED), RED, 3, None),
    "jpeg-L": ("JPEG", solid("L", 150), (150, 150, 150), 2, None),
    "jpeg-CMYK": ("JPEG", solid("CMYK", (0, 255, 255, 0)), (255, 0, 0), 3, "CMYK"),
    "jpeg-CMYK-blue": ("JPEG", solid("CMYK", (255, 255, 0, 0)), (0, 0, 255), 3, "CMYK"),
    "webp-RGBA-opaque": ("WEBP", solid("RGBA", (*RED, 255)), RED, 0, None),
}


@pytest.mark.parametrize("case", MODE_CASES.values(), ids=MODE_CASES.keys())
def test_colour_modes_become_the_expected_rgb(case):
    fmt, image, expected, tolerance, note = case
    options = {"lossless": True} if fmt == "WEBP" else {}
    array, notes = load_image_with_notes(encode(image, fmt, **options))
    assert array.shape == (HEIGHT, WIDTH, 3) and array.dtype == np.uint8
    assert close(array, expected, tolerance), (array[0, 0], expected)
    assert any(note in n for n in notes) if note else notes == []


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_alpha_is_composited_onto_white(fmt):
    image = solid("RGBA", (*RED, 255))
    image.paste((0, 0, 255, 0), (0, 0, 10, 10))  # fully transparent
    image.paste((255, 0, 0, 128), (20, 0, 30, 10))  # half transparent red
    array, notes = load_image_with_notes(encode(image, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert close(array[:10, :10], (255, 255, 255), 0)
    assert close(array[:10, 20:30], (255, 127, 127), 1)
    assert close(array[12:, :], RED, 0)
    assert notes == ["transparency composited onto white"]


def test_grey_with_alpha_is_composited_onto_white():
    image = solid("LA", (0, 255))
    image.paste((0, 0), (0, 0, 10, 10))
    array, notes = load_image_with_notes(encode(image, "PNG"))
    assert close(array[:10, :10], (255, 255, 255), 0) and close(array[12:], (0, 0, 0), 0)
    assert notes == ["transparency composited onto white"]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_composited_onto_white(fmt):
    image = _palette(RED)
    image.paste(0, (0, 0, 10, 10))  # index 0 is the transparent one
    array, notes = load_image_with_notes(encode(image, fmt, transparency=0))
    assert close(array[:10, :10], (255, 255, 255), 0)
    assert close(array[12:], RED, 0)
    assert notes == ["transparency composited onto white"]


def test_palette_with_partial_alpha_is_composited():
    image = _palette(RED)
    image.paste(0, (0, 0, 10, 10))
    image.info["transparency"] = bytes([0, 255])  # index 0 clear, index 1 opaque (PNG tRNS)
    array, notes = load_image_with_notes(encode(image, "PNG"))
    assert close(array[:10, :10], (255, 255, 255), 0) and close(array[12:], RED, 0)
    assert notes == ["transparency composited onto white"]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_images_are_divided_by_257(fmt):
    values = np.linspace(0, 65535, WIDTH).round().astype(np.uint16)[None, :].repeat(HEIGHT, axis=0)
    values[0, 0] = 128 * 257  # a value that must land exactly on 128
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    array, notes = load_image_with_notes(encode(image, fmt))
    assert array.shape == (HEIGHT, WIDTH, 3)
    expected = np.rint(values / 257).astype(np.uint8)
    np.testing.assert_array_equal(array[..., 0], expected)
    np.testing.assert_array_equal(array[..., 0], array[..., 2])
    assert array[0, 0, 0] == 128 and array[0, -1, 0] == 255 and array[1, 0, 0] == 0
    assert notes == ["16-bit image scaled to 8 bits (divided by 257)"]


def test_a_dark_16_bit_photo_stays_dark():
    """Scaling by the image's own range would turn this near-black photo mid-grey."""
    values = np.full((HEIGHT, WIDTH), 2570, dtype=np.uint16)  # 10 on the 8-bit scale
    values[0, 0] = 5140
    array = load_image(encode(Image.fromarray(values), "PNG"))
    assert array[1, 1, 0] == 10 and array[0, 0, 0] == 20


def test_float_images_in_0_to_1_are_scaled_and_others_stretched():
    unit = np.linspace(0, 1, WIDTH * HEIGHT, dtype=np.float32).reshape(HEIGHT, WIDTH)
    array, notes = load_image_with_notes(encode(Image.fromarray(unit, "F"), "TIFF"))
    assert array[0, 0, 0] == 0 and array[-1, -1, 0] == 255
    assert abs(int(array[HEIGHT // 2, 0, 0]) - round(255 * unit[HEIGHT // 2, 0])) <= 1
    assert notes == ["floating-point image scaled from 0..1 to 8 bits"]

    wide = unit * 2000 - 1000
    array, notes = load_image_with_notes(encode(Image.fromarray(wide, "F"), "TIFF"))
    assert array[0, 0, 0] == 0 and array[-1, -1, 0] == 255
    assert "stretched from its range -1000..1000" in notes[0]


def test_32_bit_integers_beyond_16_bits_are_stretched():
    values = np.linspace(-5000, 100_000, WIDTH * HEIGHT).astype(np.int32).reshape(HEIGHT, WIDTH)
    array, notes = load_image_with_notes(encode(Image.fromarray(values), "TIFF"))
    assert array[0, 0, 0] == 0 and array[-1, -1, 0] == 255
    assert "stretched" in notes[0]


# --- orientation and frames ---------------------------------------------------------------------

# EXIF orientation -> (shape once applied, the corner the stored top-left marker ends in)
ORIENTATIONS = {
    3: ((HEIGHT, WIDTH), "bottom-right"),
    6: ((WIDTH, HEIGHT), "top-right"),
    8: ((WIDTH, HEIGHT), "bottom-left"),
}


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_exif_orientation_is_applied(orientation):
    image = solid("RGB", (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 8, 8))  # a red marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    array, notes = load_image_with_notes(encode(image, "JPEG", exif=exif, quality=95))
    shape, corner = ORIENTATIONS[orientation]
    assert array.shape == (*shape, 3)
    corners = {
        "top-left": array[2, 2], "top-right": array[2, -3],
        "bottom-left": array[-3, 2], "bottom-right": array[-3, -3],
    }
    for name, pixel in corners.items():
        assert close(pixel, (255, 0, 0) if name == corner else (0, 0, 255), 40), (name, pixel)
    assert len(notes) == 1 and notes[0].startswith("EXIF orientation applied (")
    if orientation == 6:
        assert notes == ["EXIF orientation applied (rotated 90° clockwise)"]


@pytest.mark.parametrize("fmt, kind", [("GIF", "animated GIF"), ("PNG", "animated PNG"), ("WEBP", "animated WebP")])
def test_animations_give_their_first_frame_and_say_so(fmt, kind):
    frames = [solid("RGB", colour) for colour in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)
    array, notes = load_image_with_notes(data)
    assert close(array, (255, 0, 0), 0)
    assert notes == [f"{kind}: 3 frames, using the first"]


def test_multi_page_tiff_gives_its_first_page():
    pages = [solid("L", 10), solid("L", 200)]
    array, notes = load_image_with_notes(encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert close(array, (10, 10, 10), 0)
    assert notes == ["multi-page TIFF: 2 pages, using the first"]


def _truncated(fmt: str) -> bytes:
    data = encode(Image.fromarray(noise(2)), fmt)
    return data[: len(data) // 2]


# --- sources ------------------------------------------------------------------------------------


def test_paths_bytes_and_files_give_the_same_array(tmp_path):
    pixels = noise(1)
    data = encode(Image.fromarray(pixels), "PNG")
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    read_to_end = io.BytesIO(data)
    read_to_end.read()  # read from the start regardless, as Image.open does
    with open(path, "rb") as handle:
        sources = [data, bytearray(data), memoryview(data), io.BytesIO(data), read_to_end, handle, str(path), path]
        for source in sources:
            np.testing.assert_array_equal(load_image(source), pixels)
        assert not handle.closed  # the caller's handle is the caller's to close


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_paths_are_closed_after_loading_and_after_refusing(tmp_path):
    good, bad = tmp_path / "photo.png", tmp_path / "broken.jpg"
    good.write_bytes(encode(solid("RGB", RED), "PNG"))
    bad.write_bytes(_truncated("JPEG"))
    open_files = len(list(Path("/proc/self/fd").iterdir()))
    for _ in range(5):
        load_image(good)
        with pytest.raises(ImageError):
            load_image(bad)
    assert len(list(Path("/proc/self/fd").iterdir())) == open_files


def test_wrong_source_types_are_programming_errors():
    with pytest.raises(TypeError, match="path, bytes or a binary file"):
        load_image(42)
    with pytest.raises(TypeError, match="text mode"):
        load_image(io.StringIO("not bytes"))


@pytest.mark.parametrize("extension", SUPPORTED_FORMATS)
def test_every_advertised_extension_loads(tmp_path, extension):
    path = tmp_path / f"photo.{extension}"
    solid("RGB", (0, 0, 255)).save(path)  # Pillow picks the format from the extension
    assert close(load_image(path), (0, 0, 255), 3)


# --- bad input: one clear line, always an ImageError --------------------------------------------


BAD_BYTES = {
    "empty": (b"", ["the file is empty"]),
    "text": (b"hello, this is a text file renamed .png\n", ["not an image Pillow can read", "text"]),
    "random binary": (bytes(range(256)) * 4, ["not an image Pillow can read", "PNG, JPEG"]),
    "svg": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', ["SVG"]),
    "truncated jpeg": (_truncated("JPEG"), ["truncated or corrupt"]),
    "truncated png": (_truncated("PNG"), ["truncated or corrupt"]),
    "1x1": (encode(Image.new("RGB", (1, 1)), "PNG"), ["1x1", f"{MIN_SIDE}x{MIN_SIDE}"]),
    "thin": (encode(Image.new("RGB", (300, 15)), "PNG"), ["300x15", "minimum"]),
    "garbage pixels": (bilevel_png(64, 64, idat=b"not zlib"), ["truncated or corrupt"]),
}


@pytest.mark.parametrize("case", BAD_BYTES.values(), ids=BAD_BYTES.keys())
def test_bad_input_gets_one_clear_line(tmp_path, case):
    data, words = case
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    for source in (data, path, io.BytesIO(data)):
        with pytest.raises(ImageError) as raised:
            load_image(source, name="upload.png")
        message = str(raised.value)
        assert message.startswith("upload.png: ") and "\n" not in message
        for word in words:
            assert word in message


def test_a_missing_path_and_a_directory_are_named(tmp_path):
    missing = tmp_path / "nowhere.jpg"
    with pytest.raises(ImageError, match="nowhere.jpg: the file does not exist"):
        load_image(missing)
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_messages_without_a_name_are_sentences():
    with pytest.raises(ImageError, match=r"^The file is empty$"):
        load_image(b"")
    named = io.BytesIO(b"")
    named.name = "/uploads/cat.png"
    with pytest.raises(ImageError, match=r"^cat.png: the file is empty$"):
        load_image(named)


def test_truncated_files_stay_errors_and_pillow_settings_are_untouched():
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    with pytest.raises(ImageError, match="truncated"):
        load_image(_truncated("JPEG"))
    with pytest.raises(ImageError, match="over the limit"):
        load_image(bilevel_png(20000, 20000, idat=b""))
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters)) == before


@pytest.fixture
def forbid_decoding(monkeypatch):
    """Call it once the test's files are made: from then on, decoding any pixel fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("pixel data was decoded")

    def forbid():
        Image.init()  # importing the plugins builds a few small images of their own
        monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
        monkeypatch.setattr(Image.Image, "load", refuse)
    return forbid


def test_a_20000x20000_png_is_refused_from_its_header(forbid_decoding):
    data = bilevel_png(20000, 20000)  # a real, valid image: decoded it would be 400 MB
    assert len(data) < 200_000
    forbid_decoding()
    start = time.perf_counter()
    with pytest.raises(ImageError) as raised:
        load_image(data, name="bomb.png")
    assert time.perf_counter() - start < 2.0  # decoding is forbidden above; this is a backstop
    assert str(raised.value) == "bomb.png: 20000x20000 = 400 megapixels is over the limit of 40 megapixels"


@pytest.mark.parametrize("side", [7000, 10_000])  # under Pillow's warning (89 MP), and between it and its error
def test_images_over_our_limit_are_refused_before_pillows(forbid_decoding, side):
    assert side * side > MAX_PIXELS
    forbid_decoding()
    with pytest.raises(ImageError, match=f"{side}x{side} = {side * side // 1_000_000} megapixels is over the limit"):
        load_image(bilevel_png(side, side, idat=b""))


def test_a_jpeg_that_claims_20000x20000_is_refused(forbid_decoding):
    data = bytearray(encode(solid("RGB", RED), "JPEG"))
    frame = data.index(b"\xff\xc0")  # start of frame: length (2), precision (1), height (2), width (2)
    data[frame + 5 : frame + 9] = struct.pack(">HH", 20000, 20000)
    forbid_decoding()
    with pytest.raises(ImageError, match="20000x20000 = 400 megapixels"):
        load_image(bytes(data))


@pytest.mark.filterwarnings("ignore:.*:UserWarning:PIL")  # Pillow's notes on broken TIFF tags
def test_damaged_files_never_raise_anything_but_image_error():
    """Cut and flipped bytes in every format: either a picture or an ImageError, nothing else."""
    rng = np.random.default_rng(3)
    image = Image.fromarray(noise(4))
    for fmt in ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]:
        data = encode(image, fmt)
        damaged = [data[:cut] for cut in rng.integers(1, len(data), 25)]
        for _ in range(40):
            flipped = bytearray(data)
            for position in rng.integers(0, min(len(data), 200), 3):
                flipped[position] = int(rng.integers(0, 256))
            damaged.append(bytes(flipped))
        for sample in damaged:
            try:
                array = load_image(sample)
            except ImageError as error:
                assert "\n" not in str(error)
            else:
                assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3


# --- sample photos ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_PHOTOS)
def test_sample_photos_are_rgb_uint8(name):
    photo = sample_photo(name)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
    assert min(photo.shape[:2]) >= 256 and photo.std() > 20  # a real photo, not a blank
    np.testing.assert_array_equal(sample_photo(SAMPLE_PHOTOS[name]), photo)


def test_the_cat_is_chelsea():
    assert SAMPLE_PHOTOS["Cat"] == "chelsea" and sample_photo("Cat").shape == (300, 451, 3)


def test_an_unknown_sample_names_the_valid_ones():
    with pytest.raises(ValueError) as raised:
        sample_photo("dog")
    for name in SAMPLE_PHOTOS:
        assert name in str(raised.value)
