"""Images with Pillow: read and check an upload (a raster format we accept, not a
decompression bomb, not damaged), re-encode it without its metadata (EXIF carries GPS
positions and camera serials), make its thumbnail, and shrink it for the upstream.

CPU-bound: called from worker threads, never on the event loop."""

from __future__ import annotations

import io
from dataclasses import dataclass

from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from chat.services.attachments.errors import UploadRefused

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
THUMBNAIL_SIDE = 320
THUMBNAIL_TYPE = "image/webp"
_METADATA = ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "dpi")
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class CheckedImage:
    data: bytes  # re-encoded: the bytes that are stored
    content_type: str
    width: int
    height: int
    thumbnail: bytes  # WebP


def open_image(data: bytes) -> Image.Image | None:
    """The image in ``data`` if Pillow reads one of our formats there; None when it is not an
    image at all (it may still be a document)."""
    try:
        return Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError:
        # Pillow's own guard (at twice its default limit) fires before ours can.
        raise UploadRefused(_too_many_pixels()) from None
    except _DAMAGED:
        return None


def _too_many_pixels(width: int | None = None, height: int | None = None) -> str:
    from django.conf import settings

    limit = settings.MAX_IMAGE_PIXELS / 1_000_000
    if width and height:
        return _(
            "This image is %(width)s by %(height)s pixels (%(megapixels).0f megapixels); "
            "images up to %(limit).0f megapixels can be attached."
        ) % {"width": width, "height": height, "megapixels": width * height / 1e6, "limit": limit}
    return _(
        "This image has too many pixels; images up to %(limit).0f megapixels can be attached."
    ) % {"limit": limit}


def check_image(image: Image.Image, max_pixels: int) -> CheckedImage:
    """Decode ``image`` whole (a truncated or damaged file is refused), refuse one with more
    than ``max_pixels`` (counting every frame of an animation) before decoding it, and
    re-encode it without metadata."""
    width, height = image.size
    frames = getattr(image, "n_frames", 1)
    if width * height * frames > max_pixels:
        raise UploadRefused(_too_many_pixels(width, height))
    content_type = FORMATS[image.format]
    try:
        data = _reencode(image)
        thumbnail = _thumbnail(image)
    except _DAMAGED:
        raise UploadRefused(_("This image is damaged or incomplete and cannot be read.")) from None
    return CheckedImage(data, content_type, width, height, thumbnail)


def _reencode(image: Image.Image) -> bytes:
    """The same picture in the same format, with no EXIF, XMP, ICC or text chunks."""
    fmt = image.format
    out = io.BytesIO()
    if fmt == "GIF":
        image.load()
        _drop_metadata(image)
        image.save(out, "GIF", save_all=getattr(image, "n_frames", 1) > 1)
        return out.getvalue()
    picture = ImageOps.exif_transpose(image) if fmt == "JPEG" else image
    picture.load()
    _drop_metadata(picture)
    if fmt == "JPEG":
        if picture.mode not in ("RGB", "L", "CMYK"):
            picture = picture.convert("RGB")
        picture.save(out, "JPEG", quality=90)
    elif fmt == "WEBP":
        picture.save(out, "WEBP", quality=90)
    else:
        picture.save(out, "PNG")
    return out.getvalue()


def _drop_metadata(image: Image.Image) -> None:
    """Pillow writes some of ``info`` back when saving (EXIF, ICC, XMP, comments); what is
    left (transparency, GIF timing) is the picture's own."""
    for key in _METADATA:
        image.info.pop(key, None)


def _thumbnail(image: Image.Image) -> bytes:
    small = ImageOps.exif_transpose(image) if image.format == "JPEG" else image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    if small.mode not in ("RGB", "RGBA"):
        small = small.convert("RGBA")
    out = io.BytesIO()
    small.save(out, "WEBP", quality=80)
    return out.getvalue()


def fit_for_upstream(data: bytes, content_type: str, max_side: int) -> tuple[bytes, str]:
    """``data`` itself when both sides are at most ``max_side``; else the image shrunk to fit
    (same format; an animation keeps its first frame, as a PNG)."""
    image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    if max(image.size) <= max_side:
        return data, content_type
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    if image.format == "JPEG" or (image.format == "WEBP" and image.mode == "RGB"):
        fmt = image.format
    else:
        fmt = "PNG"
    image.save(out, fmt, **({"quality": 90} if fmt != "PNG" else {}))
    return out.getvalue(), FORMATS[fmt]
