"""The 8-bit grey PNG fast path equals OpenCV's decoding: every shared mask, every PNG filter type."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from nucleus_seg.errors import InputError
from nucleus_seg.geometry import MaskCrop
from nucleus_seg.image_io import read_mask_crop
from nucleus_seg.png_rows import decode_grey8_png_rows


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(pixels, filters, colour_type=0, interlace=0, extra=b""):
    """A grey PNG whose row y is filtered with ``filters[y]`` (0 None .. 4 Paeth), per the PNG spec."""
    h, w = pixels.shape
    raw, prev = bytearray(), np.zeros(w, int)
    for y in range(h):
        cur = pixels[y].astype(int)
        left = np.concatenate([[0], cur[:-1]])
        upleft = np.concatenate([[0], prev[:-1]])
        p = left + prev - upleft
        pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        predictor = {0: 0, 1: left, 2: prev, 3: (left + prev) // 2, 4: paeth}[filters[y]]
        raw += bytes([filters[y]]) + ((cur - predictor) % 256).astype(np.uint8).tobytes()
        prev = cur
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, interlace))
            + extra + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def expand(block):
    height, width, first, rows = block
    full = np.zeros((height, width), np.uint8)
    full[first:first + len(rows)] = rows
    return full


def shapes():
    """Masks that exercise run ends at the right edge (Sub carries values right) and at the
    bottom (Up carries rows down), a value other than 255 and a blank mask."""
    out = {}
    m = np.zeros((12, 9), np.uint8); m[3:6, 2:5] = 255; out["block"] = m
    m = np.zeros((12, 9), np.uint8); m[4:12, 5:9] = 255; out["to bottom-right corner"] = m
    m = np.zeros((12, 9), np.uint8); m[0, 0] = 1; m[7:9, 1:8] = 7; out["two parts, odd values"] = m
    out["blank"] = np.zeros((12, 9), np.uint8)
    return out


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("name", sorted(shapes()))
def test_fast_path_reconstructs_each_filter(name, filter_type):
    pixels = shapes()[name]
    data = png_bytes(pixels, [filter_type] * len(pixels))
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), pixels)
    assert np.array_equal(expand(decode_grey8_png_rows(data)), pixels)


def test_mixed_filters_and_random_masks():
    rng = np.random.default_rng(7)
    pixels = shapes()["two parts, odd values"]
    mixed = [0, 1, 2, 3, 4, 0, 4, 3, 1, 2, 4, 3]
    assert np.array_equal(expand(decode_grey8_png_rows(png_bytes(pixels, mixed))), pixels)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 14, 2))
        pixels = np.where(rng.random((h, w)) < rng.random() * 0.5,
                          rng.integers(1, 256, (h, w)), 0).astype(np.uint8)
        filters = rng.integers(0, 5, h).tolist()
        assert np.array_equal(expand(decode_grey8_png_rows(png_bytes(pixels, filters))), pixels)


def test_other_pngs_are_left_to_opencv(tmp_path):
    pixels = shapes()["block"]
    assert decode_grey8_png_rows(png_bytes(pixels, [0] * 12)) is not None
    assert decode_grey8_png_rows(png_bytes(pixels, [0] * 12, interlace=1)) is None
    assert decode_grey8_png_rows(png_bytes(pixels, [0] * 12, extra=chunk(b"tRNS", b"\x00\x00"))) is None
    ok, rgb = cv2.imencode(".png", np.dstack([pixels] * 3))
    assert decode_grey8_png_rows(rgb.tobytes()) is None
    ok, deep = cv2.imencode(".png", pixels.astype(np.uint16) * 200)
    assert decode_grey8_png_rows(deep.tobytes()) is None
    corrupt = bytearray(png_bytes(pixels, [1] * 12))
    corrupt[-20] ^= 0xFF  # inside the IDAT chunk: its CRC no longer matches
    assert decode_grey8_png_rows(bytes(corrupt)) is None
    (tmp_path / "bad.png").write_bytes(bytes(corrupt))
    with pytest.raises(InputError, match="cannot be decoded as a mask"):
        read_mask_crop(tmp_path / "bad.png")


def test_fast_path_equals_opencv_on_every_shared_mask(dsb_root):
    fast = 0
    paths = sorted((dsb_root / "train").glob("*/masks/*.png"))
    for path in paths:
        reference = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        block = decode_grey8_png_rows(path.read_bytes())
        if block is not None:
            fast += 1
            assert np.array_equal(expand(block), reference), path
        height, width, crop = read_mask_crop(path)
        expected = MaskCrop.from_mask(reference)
        assert (height, width, crop.box) == (*reference.shape, expected.box), path
        assert np.array_equal(crop.mask, expected.mask), path
    assert fast == len(paths)  # all are 8-bit grey PNGs: none needs OpenCV
