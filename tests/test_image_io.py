"""nucleus_seg.image_io: the one image reader (and its per-dtype conversion), used identically by
training, tools/test.py and tools/infer.py; the mask readers."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from nucleus_seg.errors import InputError
from nucleus_seg.image_io import read_image, read_mask, to_rgb8, to_uint8

TINY = "configs/nucleus/mask-rcnn_r18_fpn_tiny_nucleus.py"


def _write(path: Path, array) -> Path:
    assert cv2.imwrite(str(path), array)
    return path


# ------------------------------------------------------------------------------------ conversion
def test_conversion_is_one_rule_per_dtype():
    u16 = np.array([0, 128, 129, 200, 257, 32896, 65535], np.uint16)
    # round(v / 257): 8-bit data widened to 16 bits (v * 257) comes back unchanged
    assert to_uint8(u16).tolist() == [0, 0, 1, 1, 1, 128, 255]
    assert np.array_equal(to_uint8(np.arange(256, dtype=np.uint16) * 257), np.arange(256))
    # the same value gives the same pixel whatever else is in the image (tiles of one slide)
    assert to_uint8(np.array([1000], np.uint16))[0] == to_uint8(np.array([1000, 65535], np.uint16))[0] == 4
    assert to_uint8(np.array([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]
    assert to_uint8(np.array([False, True])).tolist() == [0, 255]
    assert to_uint8(np.array([0, 2 ** 31 - 1], np.int32)).tolist() == [0, 255]
    # a declared bit depth (TIFF BitsPerSample 12 in uint16) sets the range; beyond it saturates
    assert to_uint8(np.array([0, 2048, 4095, 5000], np.uint16), significant_bits=12).tolist() == [0, 128, 255, 255]
    assert to_uint8(np.array([0, 1000, 65535], np.uint16), significant_bits=16).tolist() == [0, 4, 255]
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        to_uint8(np.array([0.0, 255.0]))
    with pytest.raises(ValueError, match="below 0"):
        to_uint8(np.array([-1, 5], np.int16))


def test_to_rgb8_channels():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(to_rgb8(grey), np.dstack([grey] * 3))
    grey_alpha = np.dstack([grey, np.full_like(grey, 7)])
    assert np.array_equal(to_rgb8(grey_alpha), np.dstack([grey] * 3))
    bgra = np.dstack([np.full((2, 3), v, np.uint8) for v in (10, 20, 30, 0)])
    assert (to_rgb8(bgra, "bgr") == [30, 20, 10]).all() and (to_rgb8(bgra, "rgb") == [10, 20, 30]).all()
    with pytest.raises(ValueError, match="unsupported image shape"):
        to_rgb8(np.zeros((2, 3, 5), np.uint8))


def test_read_image_returns_rgb_from_colour_files(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    rgb = read_image(_write(tmp_path / "red.png", bgr))
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 5, 3)
    assert (rgb[..., 0] == 255).all() and (rgb[..., 1:] == 0).all()


def test_read_image_converts_grey_rgba_and_16_bit(tmp_path):
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = read_image(_write(tmp_path / "g.png", grey))
    assert out.shape == (4, 5, 3) and (out == grey[..., None]).all()
    bgra = np.dstack([np.full((4, 5), v, np.uint8) for v in (10, 20, 30, 0)])
    assert (read_image(_write(tmp_path / "a.png", bgra)) == [30, 20, 10]).all()
    g16 = np.array([[0, 1000], [2000, 65535]], np.uint16)
    out = read_image(_write(tmp_path / "g16.tif", g16))
    assert out.dtype == np.uint8 and out[..., 0].tolist() == [[0, 4], [8, 255]]


def test_read_image_names_the_file_when_it_cannot_be_read(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="broken.png.*cannot be decoded as an image"):
        read_image(bad)
    with pytest.raises(InputError, match="file not found"):
        read_image(tmp_path / "missing.png")
    floats = tmp_path / "f.tif"
    assert cv2.imwrite(str(floats), np.full((3, 3), 7.5, np.float32))
    with pytest.raises(InputError, match=r"f.tif: float32 pixel values must lie in \[0, 1\]"):
        read_image(floats)


# ------------------------------------------------------------- one reader for train, test, infer
@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    """A 16-bit colour image whose values are not multiples of 257 and an 8-bit grey one."""
    folder = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(3)
    u16 = rng.integers(0, 65536, (40, 56, 3)).astype(np.uint16)
    u16[0, 0] = (200, 300, 65535)  # round(v / 257) and mmcv's v >> 8 differ on the first two
    grey = rng.integers(0, 256, (48, 40)).astype(np.uint8)
    return [_write(folder / "rgb16.png", u16), _write(folder / "grey.png", grey)]


def test_training_testing_and_inference_give_the_model_identical_pixels(odd_images):
    import torch
    from mmcv.transforms import Compose
    from mmdet.registry import TRANSFORMS
    from mmdet.utils import register_all_modules

    import nucleus_seg.register  # noqa: F401
    from nucleus_seg.config_utils import load_config
    from nucleus_seg.inference.predictor import build_tile_pipeline, tile_to_model_inputs

    register_all_modules(init_default_scope=True)
    cfg = load_config(TINY)
    train_load = TRANSFORMS.build(cfg.train_dataloader.dataset.pipeline[0])
    test_pipeline = Compose(cfg.test_dataloader.dataset.pipeline)  # what tools/test.py runs
    infer_pipeline = build_tile_pipeline(cfg)                      # what tools/infer.py runs
    for path in odd_images:
        rgb = read_image(path)
        trained_on = train_load(dict(img_path=str(path)))["img"]
        assert np.array_equal(trained_on, rgb[:, :, ::-1])  # BGR, as mmdet pipelines expect
        tested = test_pipeline(dict(img_path=str(path), img_id=0))["inputs"]
        inferred = tile_to_model_inputs(infer_pipeline, rgb)["inputs"][0]
        assert tested.shape[1:] == (2 * rgb.shape[0], 2 * rgb.shape[1])  # the configs' 2x zoom
        assert torch.equal(tested, inferred), path.name
    rgb16 = read_image(odd_images[0])
    assert rgb16[0, 0].tolist() == [255, 1, 1]  # RGB of BGR (200, 300, 65535); mmcv: [255, 1, 0]


# ------------------------------------------------------------------------------------------- masks
@pytest.fixture
def blob():
    mask = np.zeros((12, 10), np.uint8)
    mask[3:7, 2:5] = 1
    return mask


def test_read_mask_value_encodings(tmp_path, blob):
    for name, pixels in {"u8_255.png": blob * 255, "u8_01.png": blob, "u8_any.png": blob * 37,
                         "u16.png": blob.astype(np.uint16) * 40000}.items():
        mask = read_mask(_write(tmp_path / name, pixels))
        assert np.array_equal(mask != 0, blob != 0), name


def test_read_mask_colour_encodings(tmp_path, blob):
    rgb = np.dstack([blob * 255] * 3)
    rgba_opaque = np.dstack([rgb, np.full_like(blob, 255)])
    rgba_alpha_only = np.dstack([np.full_like(rgb, 255), blob * 255])  # white, shape in alpha
    palette = Image.fromarray(blob, mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    for name, path in {"rgb": _write(tmp_path / "rgb.png", rgb),
                       "rgba": _write(tmp_path / "rgba.png", rgba_opaque),
                       "alpha": _write(tmp_path / "alpha.png", rgba_alpha_only),
                       "palette": tmp_path / "palette.png"}.items():
        assert np.array_equal(read_mask(path) != 0, blob != 0), name


def test_read_mask_rejects_unreadable_and_empty_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(InputError, match="mask file is empty"):
        read_mask(tmp_path / "empty.png")
    with pytest.raises(InputError, match="cannot be decoded as a mask") as exc:
        read_mask(tmp_path / "text.png")
    assert exc.value.path == str(tmp_path / "text.png")
