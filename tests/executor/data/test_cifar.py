"""CIFAR-10/100 pickles (folder or tarball) round-trip; corrupt or hostile pickles are refused."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from executor.data import load_dataset
from planner.errors import FerretError
from tests.executor.data.formats import images_uint8, write_cifar_batch


def write_cifar10(folder, rng, per_batch=4):
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = images_uint8(rng, per_batch, (3072,))
        labels = rng.integers(0, 10, size=per_batch).tolist()
        write_cifar_batch(folder / name, data, {"labels": labels})
        batches[name] = (data, labels)
    return batches


def test_cifar10_folder_round_trip(tmp_path):
    batches = write_cifar10(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    ds = load_dataset("cifar10", root=tmp_path)
    assert len(ds) == 20 and len(ds.y_test) == 4 and ds.input_shape == (3, 32, 32)
    data, labels = batches["data_batch_2"]
    # Row-major 3072 = 3 channel planes of 32×32.
    np.testing.assert_array_equal(ds.x_train[4:8], data.reshape(4, 3, 32, 32).astype(np.float32) / 255)
    assert ds.y_train[4:8].tolist() == labels
    assert ds.y_test.tolist() == batches["test_batch"][1]
    # The extracted folder itself works too.
    assert len(load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py")) == 20


def test_cifar10_from_tarball(tmp_path):
    src = tmp_path / "src" / "cifar-10-batches-py"
    write_cifar10(src, np.random.default_rng(1))
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    from_tar = load_dataset("cifar10", root=root)
    from_dir = load_dataset("cifar10", root=src)
    np.testing.assert_array_equal(from_tar.x_train, from_dir.x_train)
    np.testing.assert_array_equal(from_tar.y_test, from_dir.y_test)


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    for split, n in (("train", 6), ("test", 3)):
        fine = rng.integers(0, 100, size=n).tolist()
        write_cifar_batch(
            folder / split,
            images_uint8(rng, n, (3072,)),
            {"fine_labels": fine, "coarse_labels": [f // 5 for f in fine]},
        )
    fine_ds = load_dataset("cifar100", root=tmp_path)
    coarse_ds = load_dataset("cifar100", root=tmp_path, labels="coarse")
    assert fine_ds.num_classes == 100 and coarse_ds.num_classes == 20
    assert (coarse_ds.y_train == fine_ds.y_train // 5).all()


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(FerretError, match="CIFAR files not found"):
        load_dataset("cifar10", root=tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder, np.random.default_rng(3))
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(FerretError, match=f"{folder / 'data_batch_3'} is not a valid data pickle"):
        load_dataset("cifar10", root=tmp_path)
    write_cifar_batch(folder / "data_batch_3", images_uint8(np.random.default_rng(0), 4, (100,)), {"labels": [0] * 4})
    with pytest.raises(FerretError, match="expected N×3072 uint8"):
        load_dataset("cifar10", root=tmp_path)
    (folder / "test_batch").unlink()
    write_cifar10(folder, np.random.default_rng(3))
    (folder / "test_batch").unlink()
    with pytest.raises(FerretError, match=f"file not found: {folder / 'test_batch'}"):
        load_dataset("cifar10", root=tmp_path)
    bad_tar = tmp_path / "t" / "cifar-10-python.tar.gz"
    bad_tar.parent.mkdir()
    bad_tar.write_bytes(b"not a tarball")
    with pytest.raises(FerretError, match=f"cannot read {bad_tar}"):
        load_dataset("cifar10", root=bad_tar.parent)


def test_pickle_that_runs_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    buf = io.BytesIO()
    pickle.dump({"data": Exploit(), "fine_labels": [0]}, buf, protocol=2)
    (folder / "train").write_bytes(buf.getvalue())
    (folder / "test").write_bytes(buf.getvalue())
    with pytest.raises(FerretError, match="refusing to load"):
        load_dataset("cifar100", root=tmp_path)
    assert not (tmp_path / "pwned").exists()
