"""Tests of eqprop.datasets: IDX reading and validation, lookup order, download, the paper's split.

No test touches the real network: an autouse fixture points every mirror at a closed
port on 127.0.0.1, and the download tests serve synthetic files from a local HTTP server.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data_dir
from eqprop import datasets
from eqprop.datasets import DatasetError, DatasetNotFoundError, DownloadError, load_dataset, read_idx

UNREACHABLE = "http://127.0.0.1:9/"  # discard port: nothing listens, the connection is refused at once
FILES = datasets.IDX_FILES
N_TRAIN = datasets.VALIDATION_SIZE + 10  # the smallest synthetic training set the split accepts, plus a margin


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private HOME and cache, no real mirror, and no IDX read cached from another test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(datasets, "MIRRORS", {"mnist": (UNREACHABLE,), "fashion-mnist": (UNREACHABLE,)})
    datasets.clear_cache()
    yield
    datasets.clear_cache()


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, *, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool, **kwargs) -> Path:
    data = idx_bytes(array, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def make_idx_dataset(folder: Path, *, seed: int, gz: bool = True, n_train: int = N_TRAIN, n_test: int = 6):
    """Write the four files of a small synthetic dataset (2x3 images) into ``folder``; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 2, 3), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 2, 3), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    for role, array in arrays.items():
        write_idx(folder / (FILES[role] + (".gz" if gz else "")), array, gz=gz)
    return arrays


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def real_folder(name: str) -> Path:
    root = shared_data_dir()
    if root is None or not (root / name).is_dir():
        pytest.skip(f"no shared {name} files: set EQPROP_DATA to a folder with {name}/ (e.g. ../shared/data)")
    return root


# --------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_dataset_shapes_ranges_and_split(name, monkeypatch):
    root = real_folder(name)
    monkeypatch.setenv("EQPROP_DATA", str(root))
    data = load_dataset(name, download=False)
    assert data.name == name and data.n_classes == 10 and data.n_features == 784
    assert Path(data.source) == root / name
    assert data.x_train.shape == (50_000, 784) and data.y_train.shape == (50_000,)
    assert data.x_val.shape == (10_000, 784) and data.y_val.shape == (10_000,)
    assert data.x_test.shape == (10_000, 784) and data.y_test.shape == (10_000,)
    for x, y in [(data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)]:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.flags.c_contiguous
        assert x.min() == 0.0 and x.max() == 1.0
        counts = np.bincount(y, minlength=10)
        assert len(counts) == 10
        # every class present in roughly its share (MNIST's rarest class, 5, is about 9%)
        assert counts.min() > 0.07 * len(y) and counts.max() < 0.13 * len(y)

    # the split: train = first 50,000 of the training file, validation = its last 10,000
    images = datasets.read_images(root / name / "train-images-idx3-ubyte.gz")
    labels = datasets.read_labels(root / name / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60_000, 28, 28)
    np.testing.assert_array_equal(data.x_val, images[50_000:].reshape(10_000, 784) / np.float32(255))
    np.testing.assert_array_equal(data.y_val, labels[50_000:])
    np.testing.assert_array_equal(data.x_train[-5:], images[49_995:50_000].reshape(5, 784) / np.float32(255))
    np.testing.assert_array_equal(data.y_train, labels[:50_000])


def test_real_mnist_known_content(monkeypatch):
    root = real_folder("mnist")
    data = load_dataset("mnist", data_dir=root, download=False)
    # well-known facts of the standard files: the first training digit is a 5, the first test digit a 7,
    # and the test set's class counts
    assert data.y_train[0] == 5 and data.y_test[0] == 7
    np.testing.assert_array_equal(np.bincount(data.y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


def test_real_fashion_test_set_is_balanced():
    root = real_folder("fashion-mnist")
    data = load_dataset("fashion-mnist", data_dir=root, download=False)
    np.testing.assert_array_equal(np.bincount(data.y_test), [1000] * 10)


# --------------------------------------------------------------------------- digits


def test_digits_split_and_scaling():
    from sklearn.datasets import load_digits

    data = load_dataset("digits")
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (1197, 300, 300)
    assert data.n_features == 64 and data.n_classes == 10
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    # the three parts together are exactly sklearn's data divided by 16, shuffled
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    bunch = load_digits()
    order = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(x, (bunch.data[order] / 16).astype(np.float32))
    np.testing.assert_array_equal(y, bunch.target[order])
    assert not np.array_equal(y, bunch.target)  # shuffled, not sklearn's order
    assert set(np.unique(data.y_val)) == set(range(10))


def test_with_validation_size_recuts_training_and_validation_only():
    data = load_dataset("digits")
    train_val = np.concatenate([data.x_train, data.x_val])
    for size in (0, 1, 300, 1000):
        cut = data.with_validation_size(size)
        assert (len(cut.x_train), len(cut.x_val), len(cut.y_train), len(cut.y_val)) == (1497 - size, size,
                                                                                       1497 - size, size)
        np.testing.assert_array_equal(np.concatenate([cut.x_train, cut.x_val]), train_val)
        np.testing.assert_array_equal(cut.x_test, data.x_test)
        assert cut.x_train.flags.c_contiguous and cut.x_train.dtype == np.float32
    np.testing.assert_array_equal(data.with_validation_size(300).x_val, data.x_val)  # the standard split
    with pytest.raises(ValueError, match="validation_size must be in 0 .. 1496"):
        data.with_validation_size(1497)
    with pytest.raises(ValueError, match="validation_size must be in"):
        data.with_validation_size(-1)
    with pytest.raises(TypeError, match="validation_size must be an integer"):
        data.with_validation_size(0.5)


def test_digits_is_deterministic_and_needs_no_files(tmp_path):
    first = load_dataset("digits", data_dir=tmp_path / "ignored", download=False)
    second = load_dataset("digits")
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)


# --------------------------------------------------------------------------- IDX reading


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_read_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 3, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    got = datasets.read_images(write_idx(tmp_path / "images", images, gz=gz))
    np.testing.assert_array_equal(got, images)
    assert got.dtype == np.uint8 and got.shape == (7, 3, 4)
    assert not got.flags.writeable  # shared through the in-process cache
    np.testing.assert_array_equal(datasets.read_labels(write_idx(tmp_path / "labels", labels, gz=gz)), labels)


def test_gzip_recognised_by_content_not_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    raw_named_gz = write_idx(tmp_path / "a.gz", labels, gz=False)
    gz_named_raw = write_idx(tmp_path / "b", labels, gz=True)
    np.testing.assert_array_equal(read_idx(raw_named_gz), labels)
    np.testing.assert_array_equal(read_idx(gz_named_raw), labels)


def test_read_idx_sees_a_replaced_file(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(4, dtype=np.uint8), gz=False)
    assert read_idx(path).sum() == 0
    write_idx(path, np.ones(5, dtype=np.uint8), gz=False)  # different size: a new cache key
    np.testing.assert_array_equal(read_idx(path), np.ones(5))


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_wrong_magic_number(tmp_path, gz):
    labels_file = write_idx(tmp_path / "labels", np.zeros(5, dtype=np.uint8), gz=gz)
    with pytest.raises(DatasetError, match=r"labels.*3 dimension|0x00000803") as info:
        datasets.read_images(labels_file)  # a labels file where images are expected
    assert str(labels_file) in str(info.value) and "0x00000801" in str(info.value)

    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x12\x34\x56\x78" + bytes(20))
    with pytest.raises(DatasetError, match=r"not an IDX file: magic number 0x12345678"):
        read_idx(garbage)

    html = tmp_path / "page.gz"
    html.write_bytes(b"<html><body>403 Forbidden</body></html>")
    with pytest.raises(DatasetError, match="HTML page"):
        read_idx(html)


def test_wrong_element_type(tmp_path):
    path = write_idx(tmp_path / "floats", np.zeros(4, dtype=np.uint8), gz=False, type_code=0x0D)
    with pytest.raises(DatasetError, match=r"0x0D \(float\).*expected 0x08"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_truncated_file(tmp_path, gz):
    images = np.zeros((4, 2, 3), dtype=np.uint8)
    data = idx_bytes(images)[:-5]
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(
        DatasetError, match=r"truncated IDX file.*4 x 2 x 3 = 24 bytes.*40 bytes uncompressed.*holds only 35"
    ) as info:
        datasets.read_images(path)
    assert str(path) in str(info.value)


def test_truncated_header(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(bytes([0, 0, 8, 3]) + bytes(6))
    with pytest.raises(DatasetError, match="truncated IDX header"):
        datasets.read_images(path)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_trailing_bytes(tmp_path, gz):
    data = idx_bytes(np.zeros(6, dtype=np.uint8)) + b"junk"
    path = tmp_path / "labels"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DatasetError, match=r"4 unexpected bytes after the data"):
        datasets.read_labels(path)


def test_truncated_gzip_stream(tmp_path):
    full = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 10, 10)))
    path = tmp_path / "images.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_label_out_of_range(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([0, 3, 10, 2], dtype=np.uint8), gz=True)
    with pytest.raises(DatasetError, match=r"label 10 at index 2 is out of range; labels must be 0..9"):
        datasets.read_labels(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        read_idx(tmp_path / "nothing-here")


def test_count_mismatch_between_images_and_labels(tmp_path):
    make_idx_dataset(tmp_path / "mnist", seed=0)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8), gz=True)
    with pytest.raises(DatasetError, match=r"t10k-images.* holds 6 images but .*t10k-labels.* holds 5 labels"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_training_set_too_small_for_the_split(tmp_path):
    make_idx_dataset(tmp_path, seed=0, n_train=datasets.VALIDATION_SIZE)
    with pytest.raises(DatasetError, match="needs more than 10000"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


# --------------------------------------------------------------------------- loading and lookup


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_load_synthetic_dataset_split(tmp_path, gz):
    arrays = make_idx_dataset(tmp_path, seed=3, gz=gz)
    data = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert Path(data.source) == tmp_path and data.n_features == 6
    train = arrays["train_images"].reshape(N_TRAIN, 6).astype(np.float32) / 255
    np.testing.assert_array_equal(data.x_train, train[:10])
    np.testing.assert_array_equal(data.x_val, train[10:])
    np.testing.assert_array_equal(data.y_train, arrays["train_labels"][:10])
    np.testing.assert_array_equal(data.y_val, arrays["train_labels"][10:])
    np.testing.assert_array_equal(data.x_test, arrays["test_images"].reshape(6, 6) / np.float32(255))
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])
    assert data.y_test.dtype == np.int64 and data.x_test.dtype == np.float32
    assert "train=10, val=10000, test=6" in repr(data)


def test_mixed_gzip_and_raw_files_in_one_folder(tmp_path):
    arrays = make_idx_dataset(tmp_path, seed=4, gz=True)
    gz_labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    gz_labels.unlink()
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["test_labels"], gz=False)
    data = load_dataset("mnist", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])


def test_loaded_arrays_are_fresh_copies(tmp_path):
    make_idx_dataset(tmp_path, seed=5)
    first = load_dataset("mnist", data_dir=tmp_path, download=False)
    expected = first.x_train.copy()
    first.x_train[...] = 7.0
    second = load_dataset("mnist", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(second.x_train, expected)


def test_lookup_order(tmp_path, monkeypatch):
    explicit = make_idx_dataset(tmp_path / "explicit", seed=10)  # files directly in the folder
    env = make_idx_dataset(tmp_path / "env" / "mnist", seed=11)
    cache = make_idx_dataset(tmp_path / "home" / ".cache" / "eqprop" / "mnist", seed=12)
    monkeypatch.setenv("EQPROP_DATA", str(tmp_path / "env"))

    data = load_dataset("mnist", data_dir=tmp_path / "explicit", download=False)
    assert Path(data.source) == tmp_path / "explicit"
    np.testing.assert_array_equal(data.y_test, explicit["test_labels"])

    data = load_dataset("mnist", download=False)  # EQPROP_DATA beats the cache
    assert Path(data.source) == tmp_path / "env" / "mnist"
    np.testing.assert_array_equal(data.y_test, env["test_labels"])

    # an explicit folder without the files is an error, not a silent fall-back (issue 13):
    # test_hardening.py::test_an_incomplete_data_dir_does_not_fall_back

    monkeypatch.delenv("EQPROP_DATA")
    data = load_dataset("mnist", download=False)
    assert Path(data.source) == tmp_path / "home" / ".cache" / "eqprop" / "mnist"
    np.testing.assert_array_equal(data.y_test, cache["test_labels"])


def test_explicit_dir_with_dataset_subfolders(tmp_path):
    mnist = make_idx_dataset(tmp_path / "data" / "mnist", seed=20)
    fashion = make_idx_dataset(tmp_path / "data" / "fashion-mnist", seed=21)
    np.testing.assert_array_equal(load_dataset("mnist", data_dir=tmp_path / "data").y_test, mnist["test_labels"])
    loaded = load_dataset("Fashion_MNIST", data_dir=str(tmp_path / "data"))
    assert loaded.name == "fashion-mnist"
    np.testing.assert_array_equal(loaded.y_test, fashion["test_labels"])


def test_torchvision_layout(tmp_path):
    arrays = make_idx_dataset(tmp_path / "FashionMNIST" / "raw", seed=22, gz=False)
    data = load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])


def test_xdg_cache_home(tmp_path, monkeypatch):
    arrays = make_idx_dataset(tmp_path / "xdg" / "eqprop" / "mnist", seed=30)
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "eqprop"
    np.testing.assert_array_equal(load_dataset("mnist", download=False).y_test, arrays["test_labels"])
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG specification says
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "eqprop"


def test_local_copies_are_not_checked_against_published_checksums(tmp_path, monkeypatch):
    # synthetic files never match the published MD5s; a local copy is still accepted (structure only)
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    make_idx_dataset(datasets.cache_dir() / "mnist", seed=31)
    assert load_dataset("mnist", download=True).n_features == 6


def test_bad_names(tmp_path):
    with pytest.raises(ValueError, match="name must be one of mnist, fashion-mnist, digits; got 'cifar10'"):
        load_dataset("cifar10")
    with pytest.raises(TypeError, match="name must be a string"):
        load_dataset(3)
    with pytest.raises(ValueError, match="stored as IDX files"):
        datasets.download_dataset("digits", tmp_path)


def test_nonexistent_data_dir(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"data_dir .*nowhere is not a folder.*EQPROP_DATA"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")


# --------------------------------------------------------------------------- offline and download


def test_offline_without_files_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", download=False)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "download=False" in message and "EQPROP_DATA" in message
    assert str(tmp_path / "home" / ".cache" / "eqprop" / "mnist") in message
    assert all(f"{stem}.gz" in message for stem in FILES.values())


def test_unreachable_mirror_gives_the_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EQPROP_DATA", str(tmp_path / "env"))
    with pytest.raises(DownloadError) as info:
        load_dataset("fashion-mnist", download=True, quiet=True)
    message = str(info.value)
    assert UNREACHABLE + "train-images-idx3-ubyte.gz" in message
    assert "EQPROP_DATA" in message and str(tmp_path / "env" / "fashion-mnist") in message
    assert isinstance(info.value, FileNotFoundError)
    cache = datasets.cache_dir() / "fashion-mnist"
    assert list(cache.iterdir()) == []  # nothing half-written left behind


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        _Handler.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A local HTTP server serving ``tmp_path / 'served'``; yields (base URL, folder)."""
    served = tmp_path / "served"
    served.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_download_verifies_checksums_and_fills_the_cache(server, monkeypatch):
    url, served = server
    arrays = make_idx_dataset(served / "mnist", seed=40)
    checksums = {f"{stem}.gz": md5_of(served / "mnist" / f"{stem}.gz") for stem in FILES.values()}
    # the first mirror lacks the files (HTTP 404): the second one is used
    monkeypatch.setattr(datasets, "MIRRORS", {"mnist": (url + "missing/", url + "mnist")})
    monkeypatch.setattr(datasets, "CHECKSUMS", {"mnist": checksums})
    monkeypatch.delenv("EQPROP_DATA", raising=False)

    data = load_dataset("mnist", quiet=True)
    cache = datasets.cache_dir() / "mnist"
    assert Path(data.source) == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(checksums)
    assert all(md5_of(cache / name) == md5 for name, md5 in checksums.items())
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])
    assert len(_Handler.requests) == 8  # four 404s from the first mirror, four files from the second

    load_dataset("mnist", quiet=True)  # now found in the cache: no request
    assert len(_Handler.requests) == 8


def test_checksum_mismatch_keeps_nothing(server, monkeypatch, capsys):
    url, served = server
    make_idx_dataset(served, seed=41)
    checksums = {f"{stem}.gz": md5_of(served / f"{stem}.gz") for stem in FILES.values()}
    checksums["train-images-idx3-ubyte.gz"] = "0" * 32
    monkeypatch.delenv("EQPROP_DATA", raising=False)
    monkeypatch.setattr(datasets, "MIRRORS", {"mnist": (url,)})
    monkeypatch.setattr(datasets, "CHECKSUMS", {"mnist": checksums})

    with pytest.raises(DownloadError, match=r"checksum mismatch: MD5 [0-9a-f]{32}, published 0{32}") as info:
        load_dataset("mnist")
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    cache = datasets.cache_dir() / "mnist"
    assert list(cache.iterdir()) == []  # neither the bad file nor a temporary one
    assert "eqprop: downloading " + url + "train-images-idx3-ubyte.gz" in capsys.readouterr().err


def test_download_dataset_with_explicit_tables(server, tmp_path):
    url, served = server
    make_idx_dataset(served, seed=42)
    checksums = {f"{stem}.gz": md5_of(served / f"{stem}.gz") for stem in FILES.values()}
    target = datasets.download_dataset(
        "fashion-mnist", tmp_path / "target", mirrors=[url], checksums=checksums, quiet=True
    )
    assert target == tmp_path / "target"
    assert sorted(p.name for p in target.iterdir()) == sorted(checksums)
    data = load_dataset("fashion-mnist", data_dir=target, download=False)
    assert data.name == "fashion-mnist" and len(data.x_test) == 6
