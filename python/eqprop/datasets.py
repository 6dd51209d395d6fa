"""Datasets: MNIST and Fashion-MNIST from IDX files, and scikit-learn's bundled digits.

The paper (Scellier & Bengio 2016) trains on the first 50,000 images of
the MNIST training file, reports the error on the last 10,000 (validation) and
keeps the 10,000 test images for the final figure. :func:`load_dataset` returns
exactly that split, with pixels scaled to [0, 1] as float32.

Where the IDX files are looked for, in order (the first folder holding all four
files wins):

1. ``data_dir`` when given: ``data_dir/<name>/``, then ``data_dir`` itself, and
   nothing else: an explicit folder without the four files is an error, never
   a silent fall-back to the places below;
2. ``$EQPROP_DATA/<name>/``;
3. the user cache ``$XDG_CACHE_HOME/eqprop/<name>/`` (default ``~/.cache/eqprop/<name>/``);
4. a download from the public mirrors into the user cache (``download=True``),
   the published MD5 checksum of every ``.gz`` file verified before it is kept.

In each folder a file may be gzip-compressed (``train-images-idx3-ubyte.gz``) or
not (``train-images-idx3-ubyte``); torchvision's layout (``MNIST/raw/``,
``FashionMNIST/raw/``) is accepted too. Local copies are checked structurally
(magic number, dimensions, counts, exact length, label range), not by checksum:
re-compressed or uncompressed copies of the standard data are fine. The label
files are small, so their checksums (of the ``.gz`` file, or of the content
whatever the compression) tell MNIST and Fashion-MNIST apart: a folder whose
labels are the other dataset's is refused (:func:`identify_dataset`).

The ``digits`` dataset is scikit-learn's bundled 8x8 digits: no file, no network.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = [
    "CHECKSUMS",
    "DATASETS",
    "IDX_FILES",
    "MIRRORS",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "cache_dir",
    "candidate_dirs",
    "clear_cache",
    "default_data_dirs",
    "download_dataset",
    "find_data_dir",
    "identify_dataset",
    "load_dataset",
    "read_idx",
    "read_images",
    "read_labels",
]

DATASETS = ("mnist", "fashion-mnist", "digits")
IDX_DATASETS = ("mnist", "fashion-mnist")

# The four files of an IDX dataset, uncompressed names; "<name>.gz" is the gzip form.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Mirrors and published MD5 checksums of the .gz files, as torchvision lists them in
# torchvision/datasets/mnist.py (classes MNIST and FashionMNIST; pytorch/vision,
# commit 01977a187961243eaf66ead246fd92a5c6c7ccfc). The S3 mirror comes first for
# MNIST because yann.lecun.com often refuses downloads. Both tables are read at call
# time, so tests (or users behind a proxy) may replace them.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# MD5 of the *uncompressed* label files, so a folder is recognised whatever its
# compression. MNIST's were computed from files whose .gz match CHECKSUMS above;
# Fashion-MNIST's from a copy whose content passes the dataset's known statistics
# (balanced classes: tests/test_datasets.py).
LABEL_CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# torchvision's folder for each dataset under its root, so a torchvision download works as is.
_TORCHVISION_DIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}

N_CLASSES = 10
VALIDATION_SIZE = 10_000  # the paper: last 10,000 training images are the validation set
DIGITS_SPLIT = (1197, 300, 300)  # train / validation / test of the 1,797 8x8 digits
DIGITS_SEED = 0

ENV_VAR = "EQPROP_DATA"
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_UBYTE = 0x08
_IDX_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}
_DOWNLOAD_TIMEOUT = 60.0  # seconds without data before a mirror is abandoned
_CHUNK = 1 << 20


class DatasetError(ValueError):
    """A data file is corrupt, truncated or not the file it should be."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No local copy of a dataset was found and none could be downloaded.

    The message lists every folder searched and says where to put the files.
    """


class DownloadError(DatasetNotFoundError):
    """Every mirror failed (unreachable, HTTP error or checksum mismatch).

    Attributes
    ----------
    attempts : list of str
        One line per URL tried: the URL and why it failed.
    """

    def __init__(self, message: str, attempts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A dataset split into training, validation and test sets.

    Attributes
    ----------
    name : str
        One of :data:`DATASETS`.
    x_train, x_val, x_test : numpy.ndarray
        float32 arrays of shape (n, n_features), C-contiguous, values in [0, 1].
    y_train, y_val, y_test : numpy.ndarray
        int64 class labels in ``0 .. n_classes - 1``.
    n_classes : int
        Number of classes (10 for every dataset here).
    source : str
        Where the data came from: the folder of the IDX files, or
        ``"sklearn.datasets.load_digits"``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str = field(default="")

    @property
    def n_features(self) -> int:
        """Number of input features (pixels) per example."""
        return int(self.x_train.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The (channels, height, width) of one image; the rows of ``x_*`` are these images in C order."""
        side = math.isqrt(self.n_features)
        if side * side != self.n_features:
            raise ValueError(f"{self.name}: {self.n_features} features are not one square grey-scale image")
        return (1, side, side)

    def with_validation_size(self, validation_size: int) -> "Dataset":
        """The same data with the last ``validation_size`` training images as the validation set.

        The training and validation images are joined in their order (the
        training file's order for MNIST and Fashion-MNIST) and cut again, so
        ``validation_size=0`` trains on every training image and has an empty
        validation set: the protocol of a final fit, once the epochs and the
        hyperparameters have been chosen on a validation run. The test set is
        unchanged.

        Raises
        ------
        TypeError, ValueError
            If ``validation_size`` is not an integer in ``0 .. n - 1``, n the
            number of training and validation images together.
        """
        if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)):
            raise TypeError(f"validation_size must be an integer; got {type(validation_size).__name__}")
        total = len(self.x_train) + len(self.x_val)
        if not 0 <= validation_size < total:
            raise ValueError(f"validation_size must be in 0 .. {total - 1} ({self.name} has {total} training "
                             f"and validation images together); got {validation_size}")
        x_all = np.concatenate([self.x_train, self.x_val])
        y_all = np.concatenate([self.y_train, self.y_val])
        cut = total - int(validation_size)
        return replace(self, x_train=x_all[:cut], y_train=y_all[:cut], x_val=x_all[cut:], y_val=y_all[cut:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.x_train)}, val={len(self.x_val)}, "
            f"test={len(self.x_test)}, n_features={self.n_features}, n_classes={self.n_classes}, "
            f"source={self.source!r})"
        )


# --------------------------------------------------------------------------- IDX reading


def _decompress(path: Path, raw: bytes) -> bytes:
    """Gunzip ``raw`` when it is gzip data (detected by its magic bytes, not the file name)."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt or truncated gzip file ({exc}); delete it and fetch it again") from exc


def _parse_idx(path: Path, data: bytes, expected_ndim: int | None) -> np.ndarray:
    """Check an IDX header against ``data`` and return the payload as a uint8 array (no copy)."""
    if len(data) < 4:
        raise DatasetError(f"{path}: {len(data)} bytes is too short for an IDX file (the header alone is at least 8)")
    magic = int.from_bytes(data[:4], "big")
    expected = {3: IMAGES_MAGIC, 1: LABELS_MAGIC}.get(expected_ndim) if expected_ndim else None
    wanted = f"0x{expected:08X}" if expected is not None else "0x0000080N"
    if data[0] != 0 or data[1] != 0:
        hint = " (it looks like an HTML page, not data)" if data.lstrip()[:1] == b"<" else ""
        raise DatasetError(f"{path}: not an IDX file: magic number 0x{magic:08X}, expected {wanted}{hint}")
    type_code, ndim = data[2], data[3]
    if type_code != _UBYTE:
        type_name = _IDX_TYPE_NAMES.get(type_code, "unknown")
        raise DatasetError(
            f"{path}: IDX element type 0x{type_code:02X} ({type_name}) is not supported; "
            f"expected 0x08 (unsigned byte, as in MNIST), magic number {wanted}"
        )
    if ndim == 0 or (expected_ndim is not None and ndim != expected_ndim):
        raise DatasetError(
            f"{path}: IDX file has {ndim} dimension(s) (magic number 0x{magic:08X}), expected "
            f"{expected_ndim if expected_ndim is not None else 'at least 1'} (magic number {wanted})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{path}: truncated IDX header: {ndim} dimension(s) need {header} header bytes, the file holds {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    payload = math.prod(shape)  # Python integers: a crafted header cannot overflow the product
    expected_size = header + payload
    dims = " x ".join(str(d) for d in shape)
    if len(data) < expected_size:
        raise DatasetError(
            f"{path}: truncated IDX file: the header declares {dims} = {payload} bytes of data after a "
            f"{header}-byte header ({expected_size} bytes uncompressed), but it holds only {len(data)} bytes"
        )
    if len(data) > expected_size:
        raise DatasetError(
            f"{path}: {len(data) - expected_size} unexpected bytes after the data: the header declares "
            f"{dims} = {payload} bytes after a {header}-byte header ({expected_size} bytes uncompressed), "
            f"the file holds {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=16)
def _read_idx_cached(resolved: str, mtime_ns: int, size: int, expected_ndim: int | None) -> np.ndarray:
    # Keyed on modification time and size too, so a replaced file is read again.
    path = Path(resolved)
    array = _parse_idx(path, _decompress(path, path.read_bytes()), expected_ndim)
    array.flags.writeable = False  # shared between callers through the cache
    return array


def read_idx(path: str | os.PathLike, *, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed or not) and validate it.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip data is recognised by its content, whatever the name.
    expected_ndim : int, optional
        Required number of dimensions (3 for images, 1 for labels).

    Returns
    -------
    numpy.ndarray
        A read-only uint8 array with the shape the header declares. Reads are
        cached in-process by resolved path, modification time and size; call
        :func:`clear_cache` to drop them.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DatasetError
        If the file is not a valid IDX file of unsigned bytes: wrong magic
        number, wrong number of dimensions, truncated or with trailing bytes, or
        a corrupt gzip stream. The message names the file and what was expected.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"IDX file not found: {resolved}")
    stat = resolved.stat()
    return _read_idx_cached(str(resolved), stat.st_mtime_ns, stat.st_size, expected_ndim)


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX images file (magic 0x00000803): uint8 array (n, rows, cols)."""
    return read_idx(path, expected_ndim=3)


def read_labels(path: str | os.PathLike, *, n_classes: int = N_CLASSES) -> np.ndarray:
    """Read an IDX labels file (magic 0x00000801): uint8 array (n,), checked to lie in 0..n_classes-1."""
    labels = read_idx(path, expected_ndim=1)
    if labels.size and int(labels.max()) >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise DatasetError(
            f"{path}: label {int(labels[bad])} at index {bad} is out of range; labels must be 0..{n_classes - 1}"
        )
    return labels


def clear_cache() -> None:
    """Forget every IDX file read so far in this process."""
    _read_idx_cached.cache_clear()


# --------------------------------------------------------------------------- lookup


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {', '.join(DATASETS)}; got {name!r}")
    canonical = name.strip().lower().replace("_", "-")
    if canonical not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}; got {name!r}")
    return canonical


def _check_idx_name(name: object) -> str:
    canonical = _check_name(name)
    if canonical not in IDX_DATASETS:
        raise ValueError(f"name must be one of {', '.join(IDX_DATASETS)} (datasets stored as IDX files); got {name!r}")
    return canonical


def cache_dir() -> Path:
    """The user cache root: ``$XDG_CACHE_HOME/eqprop``, else ``~/.cache/eqprop``.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG specification asks.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "eqprop"


def _folders_under(root: Path, name: str) -> list[Path]:
    folders = [root / name]
    torchvision = root / _TORCHVISION_DIRS[name] / "raw"
    if torchvision.is_dir():  # listed only when present, to keep error messages short
        folders.append(torchvision)
    return folders


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """Every folder searched for dataset ``name``, in lookup order, with where it comes from.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    data_dir : str or os.PathLike, optional
        An explicit folder: its ``<name>/`` subfolder is tried first, then the folder itself.

    Returns
    -------
    list of (pathlib.Path, str)
        Folders (which need not exist) and a label: ``"data_dir"``, ``"EQPROP_DATA"``
        or ``"user cache"``.
    """
    name = _check_idx_name(name)
    found: list[tuple[Path, str]] = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        found += [(folder, "data_dir") for folder in _folders_under(root, name)]
        found.append((root, "data_dir"))
    return found + default_data_dirs(name)


def default_data_dirs(name: str) -> list[tuple[Path, str]]:
    """The folders searched when no ``data_dir`` is given: ``$EQPROP_DATA/<name>/``, then the user cache."""
    name = _check_idx_name(name)
    found: list[tuple[Path, str]] = []
    env = os.environ.get(ENV_VAR, "")
    if env:
        found += [(folder, ENV_VAR) for folder in _folders_under(Path(env).expanduser(), name)]
    found.append((cache_dir() / name, "user cache"))
    return found


def _files_in(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (uncompressed preferred: faster to read), or None if any is missing."""
    files = {}
    for role, stem in IDX_FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                files[role] = candidate
                break
        else:
            return None
    return files


def find_data_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first folder that holds all four IDX files, or None.

    With ``data_dir``, only the folders under it are searched (an explicit
    folder is never replaced by ``$EQPROP_DATA`` or the cache); without, the
    folders of :func:`default_data_dirs`.
    """
    for folder, label in candidate_dirs(name, data_dir):
        if data_dir is not None and label != "data_dir":
            continue
        if _files_in(folder) is not None:
            return folder
    return None


def identify_dataset(folder: str | os.PathLike) -> str | None:
    """Which dataset the label files in ``folder`` are, by their known checksums, or None if unknown.

    A label file is recognised by the MD5 of the ``.gz`` file (the published
    :data:`CHECKSUMS`) or of its uncompressed content (:data:`LABEL_CHECKSUMS`),
    so re-compressed copies are recognised too. Synthetic or modified files are
    unknown (None): they are accepted, as local copies are checked structurally.
    """
    files = _files_in(Path(folder))
    if files is None:
        return None
    for role in ("train_labels", "test_labels"):
        path = files[role]
        raw = path.read_bytes()
        digests = {hashlib.md5(raw, usedforsecurity=False).hexdigest()}
        try:
            content = _decompress(path, raw)
        except DatasetError:
            continue
        digests.add(hashlib.md5(content, usedforsecurity=False).hexdigest())
        stem = IDX_FILES[role]
        for name in IDX_DATASETS:
            known = {CHECKSUMS.get(name, {}).get(f"{stem}.gz"), LABEL_CHECKSUMS.get(name, {}).get(stem)}
            if digests & (known - {None}):
                return name
    return None


def _where_to_put(name: str) -> str:
    wanted = ", ".join(f"{stem}.gz" for stem in IDX_FILES.values())
    return (
        f"Put the four files {wanted} (gzip-compressed or not) in {cache_dir() / name}, "
        f"or in DIR/{name}/ and set {ENV_VAR}=DIR, or pass data_dir=DIR (eqprop train --data-dir DIR)."
    )


def _not_found_message(
    name: str, data_dir: str | os.PathLike | None, reason: str, *, only_data_dir: bool = False
) -> str:
    lines = [f"{name} data not found. Searched, in order:"]
    for folder, label in candidate_dirs(name, data_dir):
        if only_data_dir and label != "data_dir":
            continue
        if not folder.is_dir():
            state = "no such folder"
        else:
            missing = [
                f"{stem}[.gz]"
                for stem in IDX_FILES.values()
                if not (folder / stem).is_file() and not (folder / f"{stem}.gz").is_file()
            ]
            state = "missing " + ", ".join(missing)
        lines.append(f"  {folder} ({label}): {state}")
    if ENV_VAR not in os.environ:
        lines.append(f"  ({ENV_VAR} is not set)")
    lines.append(reason)
    lines.append(_where_to_put(name))
    return "\n".join(lines)


# --------------------------------------------------------------------------- download


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, md5: str, timeout: float) -> None:
    """Download ``url`` to ``target`` atomically: a temporary file beside it, renamed only if its MD5 matches."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        request = urllib.request.Request(url, headers={"User-Agent": "eqprop-datasets"})
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5.lower():
            raise DatasetError(f"checksum mismatch: MD5 {digest.hexdigest()}, published {md5.lower()}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def download_dataset(
    name: str,
    target_dir: str | os.PathLike | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = _DOWNLOAD_TIMEOUT,
    quiet: bool = False,
) -> Path:
    """Download the four ``.gz`` files of an IDX dataset, verifying their published MD5 checksums.

    Files already in ``target_dir`` are kept (and not re-checked). Each file is
    written to a temporary file beside its destination and renamed into place
    only once its checksum matches, so an interrupted or corrupt download never
    leaves a file that looks complete.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    target_dir : str or os.PathLike, optional
        Destination folder; default the user cache, ``cache_dir() / name``.
    mirrors : sequence of str, optional
        Base URLs tried in order for every file; default ``MIRRORS[name]``.
    checksums : mapping of str to str, optional
        MD5 hex digest of each ``.gz`` file; default ``CHECKSUMS[name]``.
    timeout : float
        Seconds to wait for a mirror before trying the next.
    quiet : bool
        Do not report each download on standard error.

    Returns
    -------
    pathlib.Path
        The folder now holding the four files.

    Raises
    ------
    DownloadError
        If some file could not be fetched with a matching checksum from any
        mirror; the message lists every attempt and where to put the files by hand.
    """
    name = _check_idx_name(name)
    target = Path(target_dir).expanduser() if target_dir is not None else cache_dir() / name
    mirrors = tuple(MIRRORS[name] if mirrors is None else mirrors)
    checksums = dict(CHECKSUMS[name] if checksums is None else checksums)
    target.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES.values():
        filename = f"{stem}.gz"
        destination = target / filename
        if destination.is_file() or (target / stem).is_file():
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            if not quiet:
                print(f"eqprop: downloading {url} -> {destination}", file=sys.stderr)
            try:
                _fetch(url, destination, checksums[filename], timeout)
                break
            except (OSError, urllib.error.URLError, DatasetError) as exc:
                failures.append(f"  {url}: {exc}")
        else:
            failures = failures or ["  (no mirrors configured)"]
            raise DownloadError(
                f"could not download {filename} for {name}; every mirror failed:\n"
                + "\n".join(failures)
                + "\n"
                + _where_to_put(name),
                failures,
            )
    return target


# --------------------------------------------------------------------------- loading


def _scale(images: np.ndarray, maximum: float) -> np.ndarray:
    """Flatten to (n, features) float32 in [0, 1]; a fresh array, so callers may modify it."""
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= np.float32(maximum)
    return x


def _load_idx_dataset(name: str, folder: Path) -> Dataset:
    files = _files_in(folder)
    if files is None:  # a file vanished between lookup and read
        raise DatasetNotFoundError(_not_found_message(name, folder, "The folder found is now incomplete."))
    splits = {}
    for part in ("train", "test"):
        images = read_images(files[f"{part}_images"])
        labels = read_labels(files[f"{part}_labels"])
        if len(images) == 0 or images.shape[1] == 0 or images.shape[2] == 0:
            raise DatasetError(
                f"{files[f'{part}_images']} holds no images (its header declares "
                f"{' x '.join(map(str, images.shape))}); the file is damaged or not {name}"
            )
        if len(images) != len(labels):
            raise DatasetError(
                f"{files[f'{part}_images']} holds {len(images)} images but {files[f'{part}_labels']} "
                f"holds {len(labels)} labels; the counts must match"
            )
        splits[part] = (images, labels)
    train_images, train_labels = splits["train"]
    test_images, test_labels = splits["test"]
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DatasetError(
            f"{files['train_images']} has {train_images.shape[1]}x{train_images.shape[2]} images but "
            f"{files['test_images']} has {test_images.shape[1]}x{test_images.shape[2]}"
        )
    if len(train_images) <= VALIDATION_SIZE:
        raise DatasetError(
            f"{files['train_images']} holds {len(train_images)} images; the paper's split needs more than "
            f"{VALIDATION_SIZE} (the last {VALIDATION_SIZE} are the validation set)"
        )
    x_all = _scale(train_images, 255.0)
    y_all = train_labels.astype(np.int64)
    cut = len(x_all) - VALIDATION_SIZE
    return Dataset(
        name=name,
        x_train=x_all[:cut],
        y_train=y_all[:cut],
        x_val=x_all[cut:],
        y_val=y_all[cut:],
        x_test=_scale(test_images, 255.0),
        y_test=test_labels.astype(np.int64),
        n_classes=N_CLASSES,
        source=str(folder),
    )


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(DIGITS_SEED).permutation(len(bunch.target))
    x = np.ascontiguousarray(bunch.data[order] / 16.0, dtype=np.float32)
    y = bunch.target[order].astype(np.int64)
    n_train, n_val, _ = DIGITS_SPLIT
    cuts = (n_train, n_train + n_val)
    return Dataset(
        name="digits",
        x_train=x[: cuts[0]].copy(),
        y_train=y[: cuts[0]].copy(),
        x_val=x[cuts[0] : cuts[1]].copy(),
        y_val=y[cuts[0] : cuts[1]].copy(),
        x_test=x[cuts[1] :].copy(),
        y_test=y[cuts[1] :].copy(),
        n_classes=N_CLASSES,
        source="sklearn.datasets.load_digits",
    )


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    quiet: bool = False,
) -> Dataset:
    """Load a dataset with the paper's split.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist", "digits"}
        ``"fashion_mnist"`` and other capitalisations are accepted too.
    data_dir : str or os.PathLike, optional
        A folder holding the IDX files directly, or ``mnist/`` and
        ``fashion-mnist/`` subfolders. Searched before ``$EQPROP_DATA`` and the
        user cache (see the module documentation). Ignored for ``digits``.
    download : bool
        Download from the public mirrors into the user cache if no local copy is found.
    quiet : bool
        Do not report downloads on standard error.

    Returns
    -------
    Dataset
        For MNIST and Fashion-MNIST: the first 50,000 training images (train),
        the last 10,000 training images (validation) and the 10,000 test images,
        pixels divided by 255. For ``digits``: the 1,797 8x8 images shuffled
        with seed 0 and split 1,197 / 300 / 300, pixels divided by 16. The
        arrays are fresh copies: modifying them affects no later load.

    Raises
    ------
    ValueError, TypeError
        If ``name`` is not one of :data:`DATASETS`.
    DatasetNotFoundError
        If no local copy exists and ``download`` is False or every mirror failed
        (then a :class:`DownloadError`); the message says where to put the files.
    DatasetError
        If a file found is corrupt, truncated or inconsistent with the others.
    """
    name = _check_name(name)
    if name == "digits":
        return _load_digits()
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DatasetNotFoundError(f"data_dir {data_dir} is not a folder. " + _where_to_put(name))
    folder = find_data_dir(name, data_dir)
    if folder is None and data_dir is not None:
        raise DatasetNotFoundError(_not_found_message(
            name, data_dir, f"data_dir was given, so {ENV_VAR}, the user cache and a download were not tried.",
            only_data_dir=True,
        ))
    if folder is None:
        if not download:
            raise DatasetNotFoundError(_not_found_message(name, data_dir, "Download was disabled (download=False)."))
        try:
            folder = download_dataset(name, quiet=quiet)
        except DownloadError as exc:
            reason = "Download into the user cache failed:\n" + "\n".join(exc.attempts)
            raise DownloadError(_not_found_message(name, data_dir, reason), exc.attempts) from exc
    held = identify_dataset(folder)
    if held is not None and held != name:
        raise DatasetError(
            f"{folder} holds {held}, not {name}: its label files match {held}'s known checksums; "
            f"point data_dir (--data-dir) at the {name} files"
        )
    return _load_idx_dataset(name, folder)
