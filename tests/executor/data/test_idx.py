"""MNIST-family IDX loaders round-trip files written by the test; bad files name their path."""

import numpy as np
import pytest

from executor.data import load_dataset
from planner.errors import FerretError
from tests.executor.data.formats import images_uint8, write_idx


def write_mnist(root, rng, prefix="", test="t10k", gz=False, n=(12, 5), classes=10, offset=0):
    arrays = {}
    for split, count in zip(("train", test), n, strict=True):
        x = images_uint8(rng, count, (28, 28))
        y = (rng.integers(0, classes, size=count) + offset).astype(np.uint8)
        write_idx(root / f"{prefix}{split}-images-idx3-ubyte{'.gz' if gz else ''}", x, gz)
        write_idx(root / f"{prefix}{split}-labels-idx1-ubyte{'.gz' if gz else ''}", y, gz)
        arrays[split] = (x, y)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_round_trip(tmp_path, name, gz):
    arrays = write_mnist(tmp_path, np.random.default_rng(0), gz=gz)
    ds = load_dataset(name, root=tmp_path)
    x, y = arrays["train"]
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    np.testing.assert_array_equal(ds.x_train[:, 0], x.astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y_train, y)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k"][1])
    assert ds.stored_bytes_per_sample == 784


def test_torchvision_layout(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", np.random.default_rng(1))
    assert len(load_dataset("mnist", root=tmp_path)) == 12


def test_emnist_images_are_transposed_and_letters_shifted(tmp_path):
    rng = np.random.default_rng(2)
    arrays = write_mnist(tmp_path, rng, prefix="emnist-letters-", test="test", classes=26, offset=1)
    ds = load_dataset("emnist", root=tmp_path, split="letters")
    x, y = arrays["train"]
    np.testing.assert_array_equal(ds.x_train[:, 0], x.transpose(0, 2, 1).astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y_train, y.astype(np.int64) - 1)
    assert ds.num_classes == 26 and ds.name == "emnist-letters"


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FerretError, match=f"file not found: {tmp_path}/train-images-idx3-ubyte"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(FerretError, match="mnist data folder not found"):
        load_dataset("mnist", root=tmp_path / "nowhere")
    with pytest.raises(FerretError, match="loads local files"):
        load_dataset("mnist")


def test_corrupt_files_name_the_path(tmp_path):
    write_mnist(tmp_path, np.random.default_rng(3))
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x08\x03garbage")
    with pytest.raises(FerretError, match=f"{bad} is not an IDX file"):
        load_dataset("mnist", root=tmp_path)
    write_idx(bad, images_uint8(np.random.default_rng(3), 12, (28, 28)))
    bad.write_bytes(bad.read_bytes()[:-10])  # truncated payload
    with pytest.raises(FerretError, match=f"{bad}: IDX payload has"):
        load_dataset("mnist", root=tmp_path)
    write_idx(bad, images_uint8(np.random.default_rng(3), 11, (28, 28)))  # 11 images, 12 labels
    with pytest.raises(FerretError, match="12 labels for 11 images"):
        load_dataset("mnist", root=tmp_path)
    gz = tmp_path / "gz"
    write_mnist(gz, np.random.default_rng(4), gz=True)
    broken = gz / "t10k-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:12])
    with pytest.raises(FerretError, match=f"cannot read {broken}"):
        load_dataset("mnist", root=gz)


def test_bad_labels_and_options(tmp_path):
    write_mnist(tmp_path, np.random.default_rng(5), classes=12)
    with pytest.raises(FerretError, match=r"labels .* fall outside \[0, 10\)"):
        load_dataset("fashion-mnist", root=tmp_path)
    with pytest.raises(FerretError, match="emnist split must be one of"):
        load_dataset("emnist", root=tmp_path, split="greek")
    with pytest.raises(FerretError, match="does not take option"):
        load_dataset("mnist", root=tmp_path, colour=True)
