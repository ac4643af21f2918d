"""Image folders (class folders, train/test, nested groups, Tiny-ImageNet val) via Pillow."""

import numpy as np
import pytest
from PIL import Image

from executor.data import load_dataset
from planner.errors import FerretError


def write_image(path, value, size=(6, 6), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((*size, 3), value, dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)


def test_train_test_layout_round_trip(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for c, value in (("cat", 40), ("dog", 200)):
            for i in range(n):
                write_image(tmp_path / split / c / f"{i}.png", value + i)
    write_image(tmp_path / "train" / "dog" / "extra.jpg", 100, fmt="JPEG")
    ds = load_dataset("image-folder", root=tmp_path, size=4)
    assert ds.input_shape == (3, 4, 4) and ds.num_classes == 2
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 1]
    # Uniform PNGs survive the resize exactly; the pixel is value / 255 in every channel.
    np.testing.assert_allclose(ds.x_train[1], (41 / 255) * np.ones((3, 4, 4)), atol=1e-6)
    np.testing.assert_allclose(ds.x_test[1], 200 / 255, atol=1e-6)
    assert ds.stored_bytes_per_sample == 3 * 4 * 4
    grey = load_dataset("image-folder", root=tmp_path, size=4, channels=1)
    assert grey.input_shape == (1, 4, 4)


def test_class_folders_split_by_seed(tmp_path):
    for c in range(3):
        for i in range(10):
            write_image(tmp_path / f"class{c}" / "sub" / f"{i}.bmp", 10 * c + i, fmt="BMP")
    a = load_dataset("image-folder", root=tmp_path, seed=1, size=2)
    b = load_dataset("image-folder", root=tmp_path, seed=1, size=2)
    c = load_dataset("image-folder", root=tmp_path, seed=2, size=2)
    assert len(a) == 24 and len(a.y_test) == 6
    assert np.bincount(a.y_test).tolist() == [2, 2, 2]
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_nested_groups_keep_time_order_and_hold_out_groups(tmp_path):
    # CORe50-like: sessions s1..s3 holding objects o1, o2.
    for s in (1, 2, 3):
        for o in (1, 2):
            for i in range(2):
                write_image(tmp_path / f"s{s}" / f"o{o}" / f"{i}.png", 50 * s + 10 * o + i)
    ds = load_dataset("image-folder", root=tmp_path, layout="nested", test_groups="s2", size=2)
    assert len(ds) == 8 and len(ds.y_test) == 4
    first_pixel = np.round(ds.x_train[:, 0, 0, 0] * 255).astype(int).tolist()
    assert first_pixel == [60, 61, 70, 71, 160, 161, 170, 171]  # s1 then s3: the time order
    with pytest.raises(FerretError, match="test_groups s9 not found"):
        load_dataset("image-folder", root=tmp_path, layout="nested", test_groups="s9")


def test_tiny_imagenet_validation_annotations(tmp_path):
    for wnid, value in (("n01", 30), ("n02", 90)):
        for i in range(2):
            write_image(tmp_path / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", value, fmt="JPEG")
    write_image(tmp_path / "val" / "images" / "val_0.JPEG", 90, fmt="JPEG")
    write_image(tmp_path / "val" / "images" / "val_1.JPEG", 30, fmt="JPEG")
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t5\t5\nval_1.JPEG\tn01\t0\t0\t5\t5\n")
    ds = load_dataset("image-folder", root=tmp_path, size=4)
    assert ds.y_test.tolist() == [1, 0]


def test_bad_folders_name_the_path(tmp_path):
    for c in ("a", "b"):
        write_image(tmp_path / "train" / c / "0.png", 1)
        write_image(tmp_path / "test" / c / "0.png", 1)
    broken = tmp_path / "train" / "b" / "1.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(FerretError, match=f"cannot decode image {broken}"):
        load_dataset("image-folder", root=tmp_path)
    broken.unlink()
    write_image(tmp_path / "test" / "zebra" / "0.png", 1)
    with pytest.raises(FerretError, match="test classes without training images: zebra"):
        load_dataset("image-folder", root=tmp_path)
    with pytest.raises(FerretError, match="image-folder data folder not found"):
        load_dataset("image-folder", root=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FerretError, match="at least 2 classes"):
        load_dataset("image-folder", root=empty)
