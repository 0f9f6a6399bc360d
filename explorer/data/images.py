"""Every image file the project reads, decoded to an RGB uint8 array in one way.

Grad-CAM's upload, path or sample photo and every file of a ``folder:`` data set go through
``load_image``, so a photo gives the same pixels in both. It accepts what people actually upload
and refuses the rest with one clear line (``ImageError``), never a traceback.

- Formats: PNG (and APNG), JPEG, WebP, BMP, GIF, TIFF; anything else Pillow can read works too.
  Animated or multi-page files give their first frame, and say so in a note.
- Colour modes: RGB; grey (``L``) and 1-bit are repeated over three channels; palettes are looked
  up. Transparency (an alpha channel, or a palette or colour key marked transparent) is composited
  onto white, as a browser shows it on a white page. CMYK (Adobe's inverted JPEGs included, as
  Pillow reads them), YCbCr and HSV go through Pillow's conversion, LAB through LittleCMS to sRGB.
- 16-bit images (``I;16``, and ``I`` whose values lie in 0..65535) are divided by 257, which maps
  0..65535 onto 0..255 exactly. A normal 16-bit photo spans that range, so it looks as it should;
  stretching each image to its own range would brighten dark photos and turn noise in a flat one
  into contrast. Other integer images are stretched from their own range. Float images (``F``)
  in 0..1 are multiplied by 255, in 0..255 rounded, otherwise stretched from their own range.
- EXIF orientation is applied, so a phone photo stands the way it was taken.

Safety: the size in the header is checked against ``MAX_PIXELS`` before any pixel is decoded
(``Image.open`` reads only the header), so a small file that claims 20000x20000 pixels costs
nothing. Pillow's own decompression-bomb error is caught and reported the same way. No global
Pillow setting is changed: truncated files are errors, as Pillow's default has them.
"""

from __future__ import annotations

import codecs
import io
import os
import warnings
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from explorer.i18n import N_

# Our decompression-bomb limit: 40 megapixels holds any phone or camera photo (a 7000x5700 frame)
# and decodes to at most 120 MB of RGB; Pillow's own limit (89 megapixels) is looser.
MAX_PIXELS = 40_000_000
# Smaller images carry no picture to explain, so Grad-CAM refuses them (a 1x1 image, say); a data
# set's small images (8x8 icons, 32x32 CIFAR-10 files) are fine, and its loader passes min_side=1.
MIN_SIDE = 16
# The image upload's cap in MB (Streamlit's MB: 2**20 bytes). A photo at MAX_PIXELS is 10-25 MB
# as JPEG, PNG or WebP; an uncompressed BMP or TIFF reaches 50 MB at about 16 megapixels. Larger
# files are refused at the widget, before the server holds them in memory.
MAX_IMAGE_UPLOAD_MB = 50
# For the upload widget's list of types; the content, not the name, decides how a file is read.
SUPPORTED_FORMATS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
# Display name -> the function in ``skimage.data`` that returns the photo.
SAMPLE_PHOTOS = {N_("Cat"): "chelsea", N_("Coffee"): "coffee", N_("Astronaut"): "astronaut", N_("Rocket"): "rocket"}

_FORMAT_NAMES = "PNG, JPEG, WebP, BMP, GIF, TIFF"
# What each EXIF orientation value means once applied (value 1 means "as stored").
_ORIENTATIONS = {
    2: "mirrored left to right",
    3: "rotated 180°",
    4: "mirrored top to bottom",
    5: "mirrored and rotated 90° counter-clockwise",
    6: "rotated 90° clockwise",
    7: "mirrored and rotated 90° clockwise",
    8: "rotated 90° counter-clockwise",
}
_ANIMATED_NAMES = {"GIF": "animated GIF", "PNG": "animated PNG", "WEBP": "animated WebP"}


class ImageError(ValueError):
    """A clear one-line reason why an image cannot be used."""


Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def load_image(source: Source, name: str | None = None, *, min_side: int = MIN_SIDE) -> np.ndarray:
    """Decode to an RGB uint8 array (H, W, 3); see the module docstring for what is accepted.

    ``source`` is a path, the file's bytes, or a binary file object (read from its start, as
    ``Image.open`` does). ``name`` labels error messages; it defaults to the path or the file
    object's ``name``. Transparent areas are composited onto white. An image with a side shorter
    than ``min_side`` pixels is refused. Raises ``ImageError``.
    """
    return load_image_with_notes(source, name, min_side=min_side)[0]


def load_image_with_notes(source: Source, name: str | None = None, *,
                          min_side: int = MIN_SIDE) -> tuple[np.ndarray, list[str]]:
    """``load_image``, and notes on what was done to the image to make it RGB, for the user.

    For example "animated GIF: 12 frames, using the first", "transparency composited onto white",
    "16-bit image scaled to 8 bits (divided by 257)", "EXIF orientation applied (rotated 90°
    clockwise)". An ordinary RGB photo has no notes.
    """
    label = _label(source, name)
    try:
        stream = _open(source)
        try:
            return _decode(stream, min_side)
        finally:
            stream.close()
    except ImageError as error:
        raise ImageError(f"{label}: {error}" if label else _capitalised(str(error))) from None


def sample_photo(name: str) -> np.ndarray:
    """One of ``SAMPLE_PHOTOS`` (by display name or ``skimage.data`` name), RGB uint8 (H, W, 3).

    The photos ship inside the installed scikit-image package, so no download is needed.
    """
    function = SAMPLE_PHOTOS.get(name, name if name in SAMPLE_PHOTOS.values() else None)
    if function is None:
        raise ValueError(f"unknown sample photo {name!r}; choose one of: {', '.join(SAMPLE_PHOTOS)}")
    try:
        from skimage import data
    except ImportError as error:
        raise ImportError("sample photos come from scikit-image: pip install scikit-image") from error
    photo = np.ascontiguousarray(getattr(data, function)(), dtype=np.uint8)
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"skimage.data.{function}() is not an RGB photo (shape {photo.shape})")
    return photo


def _label(source: object, name: str | None) -> str | None:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    source_name = getattr(source, "name", None)
    return os.path.basename(source_name) if isinstance(source_name, str) else None


def _open(source: Source) -> BinaryIO:
    """A binary stream over the source's bytes; checks that a file is there and is not empty."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(source)
        if os.path.isdir(path):
            raise ImageError("this is a directory, not an image file")
        if not os.path.exists(path):
            raise ImageError("the file does not exist")
        if not os.path.isfile(path):
            raise ImageError("this is not a regular file")
        try:
            if os.path.getsize(path) == 0:
                raise ImageError("the file is empty")
            # Read lazily: Image.open reads the header only, so a huge file costs nothing yet.
            return open(path, "rb")
        except OSError as error:
            raise ImageError(f"the file cannot be read ({error.strerror or error})") from None
    elif hasattr(source, "read"):
        try:
            if getattr(source, "seekable", lambda: False)():
                source.seek(0)
            data = source.read()
        except OSError as error:
            raise ImageError(f"the file cannot be read ({_one_line(error)})") from None
        if isinstance(data, str):
            raise TypeError("the file was opened in text mode; open images with 'rb'")
    else:
        raise TypeError(f"expected a path, bytes or a binary file, not {type(source).__name__}")
    if not data:
        raise ImageError("the file is empty")
    return io.BytesIO(data)


def _decode(stream: BinaryIO, min_side: int) -> tuple[np.ndarray, list[str]]:
    try:
        # Local, and only for this call: Pillow warns between its limit and twice it; we refuse
        # all of that range anyway (MAX_PIXELS is lower), so the warning becomes the same refusal.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                return _to_array(image, min_side)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(_too_large(_header_size(stream), error)) from None
    except UnidentifiedImageError:
        raise ImageError(f"not an image Pillow can read ({_guess_what(stream)})") from None
    except MemoryError:
        raise ImageError("there is not enough memory to decode this image") from None
    except Exception as error:  # noqa: BLE001 - a broken file raises OSError, SyntaxError, EOFError, ...
        raise ImageError(f"the image data is truncated or corrupt ({_one_line(error)})") from None


def _to_array(image: Image.Image, min_side: int) -> tuple[np.ndarray, list[str]]:
    """The first frame of an opened image as RGB uint8, with notes; the size is checked first."""
    notes: list[str] = []
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(_too_large((width, height)))
    if min(width, height) < min_side:
        raise ImageError(f"the image is {width}x{height} pixels; the minimum is {min_side}x{min_side}")
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        image.seek(0)
        # A camera's MPO is a JPEG with extra pictures (a preview, a depth map): the first is the photo.
        if image.format == "TIFF":
            notes.append(f"multi-page TIFF: {frames} pages, using the first")
        elif image.format != "MPO":
            kind = _ANIMATED_NAMES.get(image.format or "", f"animated {image.format}")
            notes.append(f"{kind}: {frames} frames, using the first")
    image.load()
    orientation = _orientation(image)
    if orientation in _ORIENTATIONS:
        image = ImageOps.exif_transpose(image)
        notes.append(f"EXIF orientation applied ({_ORIENTATIONS[orientation]})")
    rgb = _to_rgb(image, notes)
    array = np.array(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(f"the image decoded to shape {array.shape}, not (height, width, 3)")
    return array, notes


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # noqa: BLE001 - broken metadata must not cost the user a readable picture
        return 1


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        image = _to_8_bits(image, notes)  # a colour-key transparency on these is dropped
    elif mode == "LAB":
        return _lab_to_rgb(image)
    elif image.has_transparency_data:  # an alpha channel, a palette with alpha, or a colour key
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            rgba = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            notes.append("transparency composited onto white")
        return rgba.convert("RGB")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB without a colour profile, so colours are approximate")
    try:
        return image.convert("RGB")
    except ValueError:
        raise ImageError(f"its colour mode {mode} cannot be converted to RGB") from None


def _to_8_bits(image: Image.Image, notes: list[str]) -> Image.Image:
    """A 16-bit, 32-bit integer or float image as 8-bit grey; the module docstring has the rules."""
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        low, high = float(values.min()), float(values.max())
        if low >= 0 and high <= 1:
            values = values * 255
            notes.append("floating-point image scaled from 0..1 to 8 bits")
        elif low >= 0 and high <= 255:
            notes.append("floating-point image rounded to 8 bits")
        else:
            values = _stretch(values, low, high)
            notes.append(f"floating-point image stretched from its range {low:g}..{high:g} to 8 bits")
    else:
        values = np.asarray(image)
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high <= 65535:
            notes.append("16-bit image scaled to 8 bits (divided by 257)")
            # Integer rounding of value / 257 (odd, so never a tie), in 4 bytes a pixel, not 8.
            return Image.fromarray(((values.astype(np.uint32) + 128) // 257).astype(np.uint8), "L")
        values = _stretch(values.astype(np.float64), low, high)
        notes.append(f"32-bit image stretched from its range {low}..{high} to 8 bits")
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    try:
        from PIL import ImageCms
    except ImportError:
        raise ImageError("LAB images need Pillow built with LittleCMS") from None
    transform = ImageCms.buildTransform(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
    )
    return ImageCms.applyTransform(image, transform)


def _too_large(size: tuple[int, int] | None, error: Exception | None = None) -> str:
    if size is None:  # the header could not be read again: Pillow's message has the pixel count
        return f"the image is over the decompression-bomb limit ({_one_line(error)})"
    width, height = size
    # Pillow's limit is set by the host program; should it be lower than ours, name that one.
    limit = MAX_PIXELS if width * height > MAX_PIXELS else 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return (
        f"{width}x{height} = {_megapixels(width * height)} megapixels is over the limit of "
        f"{_megapixels(limit)} megapixels"
    )


def _header_size(stream: BinaryIO) -> tuple[int, int] | None:
    """The size in the header of an image Pillow refused as a decompression bomb.

    ``Image.open`` refuses such a file before handing it over, so this reads the header the way
    ``Image.open`` does (each registered format's acceptor, then its header parser) without the
    check. Only called to name the size in the message; nothing is decoded.
    """
    Image.init()
    stream.seek(0)
    prefix = stream.read(16)
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        accepted = accept(prefix) if accept is not None else True
        if not accepted or isinstance(accepted, str):  # a string is a reason it is not this format
            continue
        try:
            stream.seek(0)
            return tuple(factory(stream, "").size)
        except Exception:  # noqa: BLE001 - not this format; try the next
            continue
    return None


def _guess_what(stream: BinaryIO) -> str:
    """What a file Pillow cannot identify probably is, for the message."""
    stream.seek(0)
    head = stream.read(1024)
    if b"ftyphei" in head[:16] or b"ftypmif1" in head[:16] or b"ftyphevc" in head[:16]:
        return "HEIC/HEIF is not supported; export the photo as JPEG or PNG"
    if b"<svg" in head.lower():
        return "SVG is a vector format; export it as PNG"
    try:
        # Incremental, so a character cut at the end of the 1 KiB does not count against it.
        text = codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        text = None
    if text is not None and all(char.isprintable() or char.isspace() for char in text):
        return "it looks like text"
    return f"supported: {_FORMAT_NAMES}"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}".removesuffix(".0")


def _one_line(error: BaseException | None) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
