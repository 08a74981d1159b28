"""Image sources: turn a named source into uint8 images [N, 28, 28] (and int32 labels) on the host.

Sources (the ``source`` argument of :func:`load_images`):

- ``mnist``: MNIST through tensorflow-datasets ``tfds.data_source`` (array_record files,
  read without TensorFlow). It must be prepared once with :func:`prepare_mnist`
  (``python -m experiments.prepare_mnist``), which does need TensorFlow and network.
- ``idx:DIR``: the raw IDX files MNIST, Fashion-MNIST and KMNIST are distributed as,
  ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, gzipped or not (told by the file's first
  bytes, not by a ``.gz`` in its name), read with numpy.
- ``digits``: scikit-learn's bundled 8x8 handwritten digits resized to 28x28 (offline).
- ``auto``: ``mnist`` when tfds has it prepared, otherwise ``digits``; the returned
  ``source`` string says which and why.

Every failure a user can cause (a missing folder, a truncated file, an unprepared
dataset) is a :class:`~jaxgan.errors.UserError` with one sentence.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import math
import os
import pathlib
import socket
import threading
import urllib.parse
import zlib

import numpy as np

from jaxgan.errors import UserError

SPLITS = ("train", "test")
SOURCES = ("mnist", "idx:DIR", "digits", "auto")
IMAGE_SIZE = 28

# The digits source: the first _DIGITS_TRAIN images are "train", the rest "test" (a fixed
# contiguous 80/20 split, as scikit-learn's own digits example splits without shuffling).
_DIGITS_TRAIN = 1437
# 8x8 digits become a 20x20 box padded by 4 on each side: MNIST's digits sit in a 20x20 box.
_DIGITS_BOX = 20

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
_IDX_PREFIX = {"train": "train", "test": "t10k"}

_PREPARE_HINT = "pip install -e '.[mnist]'` and then `python -m experiments.prepare_mnist"
# A reachable host answers a TCP connect in well under a second; without network, tfds's own
# download retries for minutes before it gives up.
_CONNECT_TIMEOUT_S = 5.0
_OTHER_SOURCES = ("--dataset idx:DIR (a folder of raw IDX files) or --dataset digits "
                  "(scikit-learn's 8x8 digits, offline)")


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """A whole image set on the host: images uint8 [N, 28, 28], labels int32 [N] or None."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str

    def __post_init__(self):
        """Checks shapes and dtypes so every consumer can rely on them."""
        if (self.images.dtype != np.uint8 or self.images.ndim != 3
                or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE)):
            raise ValueError(f"images must be uint8 [N, 28, 28], got {self.images.dtype} "
                             f"{list(self.images.shape)}")
        if self.labels is not None and (self.labels.dtype != np.int32
                                        or self.labels.shape != self.images.shape[:1]):
            raise ValueError(f"labels must be int32 [{self.images.shape[0]}], got "
                             f"{self.labels.dtype} {list(self.labels.shape)}")


def load_images(source: str, *, split: str = "train", data_dir: str | None = None) -> ImageSet:
    """Loads ``source`` (mnist, idx:DIR, digits or auto) as uint8 images [N, 28, 28] and int32 labels [N].

    ``split`` is "train" or "test"; ``data_dir`` is tfds's data directory (mnist and auto
    only; None means tfds's default). The ``source`` field of the result says in words
    what was loaded, including the choice ``auto`` made.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; the splits are {', '.join(SPLITS)}")
    if source == "mnist":
        return _load_mnist(split, data_dir)
    if source.startswith("idx:"):
        return _load_idx(source[len("idx:"):], split)
    if source == "digits":
        return _load_digits(split)
    if source == "auto":
        return _load_auto(split, data_dir)
    raise UserError(f"unknown image source {source!r}; the sources are {', '.join(SOURCES)}")


# --- mnist through tensorflow-datasets -------------------------------------------------------


def _mnist_builder(data_dir: str | None):
    """The tfds MNIST builder for ``data_dir``, set to write array_record (random access, no TF to read)."""
    import tensorflow_datasets as tfds

    # tfds writes tfrecord by default, which data_source cannot read; name the format explicitly.
    return tfds.builder("mnist", data_dir=data_dir, file_format="array_record")


def _tfds_root(builder) -> str:
    """The data directory a builder reads from (its data_dir is <root>/mnist/<version>)."""
    return str(pathlib.Path(builder.data_dir).parent.parent)


def _mnist_problem(data_dir: str | None, split: str) -> tuple[str, str] | None:
    """Why MNIST cannot be read from ``data_dir`` without downloading and what to do, or None if it can."""
    builder = _mnist_builder(data_dir)
    root = _tfds_root(builder)
    if not builder.is_prepared():
        return (f"MNIST is not prepared in the tfds data dir {root}",
                f"run {_prepare_command(data_dir)} once (it needs TensorFlow and network)")
    formats = {str(f.value) for f in builder.info.available_file_formats()}
    if "array_record" not in formats:
        return (f"MNIST in the tfds data dir {root} is stored as {', '.join(sorted(formats))}, "
                f"which tfds.data_source cannot read",
                f"prepare it as array_record in another data dir with {_prepare_command('NEW_DIR')}")
    if split not in builder.info.splits:
        return (f"MNIST in the tfds data dir {root} has no {split!r} split "
                f"(it has {', '.join(sorted(builder.info.splits))})",
                f"prepare it again with {_prepare_command('NEW_DIR')}")
    return None


def _prepare_command(data_dir: str | None) -> str:
    """The shell commands that prepare MNIST into ``data_dir``."""
    return f"`{_PREPARE_HINT}{'' if data_dir is None else ' --data-dir ' + data_dir}`"


def _load_mnist(split: str, data_dir: str | None, note: str | None = None) -> ImageSet:
    """Reads a prepared tfds MNIST split through ``tfds.data_source`` (no download, no TensorFlow)."""
    import tensorflow_datasets as tfds

    try:
        records = tfds.data_source("mnist", split=split, data_dir=data_dir, download=False)
    except Exception as err:
        # tfds fails here with NotImplementedError, ValueError or KeyError depending on what is
        # missing; asking the builder afterwards turns that into a sentence that says what to do.
        problem = _mnist_problem(data_dir, split)
        if problem is None:
            detail = (str(err).strip().splitlines() or [""])[0]
            raise UserError(f"tfds could not read MNIST ({type(err).__name__}: {detail})") from err
        reason, remedy = problem
        raise UserError(f"{reason}: {remedy}, or use {_OTHER_SOURCES}") from None
    count = len(records)
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    labels = np.empty((count,), np.int32)
    # Index one record at a time: the decoding (PNG per image) dominates anyway, and the
    # batched __getitems__ of tfds's mock data source is broken in tfds 4.9.10.
    for index in range(count):
        example = records[index]
        images[index] = np.asarray(example["image"]).reshape(IMAGE_SIZE, IMAGE_SIZE)
        labels[index] = example["label"]
    where = records.dataset_info.data_dir
    prefix = f"{note}; " if note else ""
    return ImageSet(images, labels, f"mnist ({prefix}tfds, split={split}, {count} images, from {where})")


def prepare_mnist(data_dir: str | None = None) -> str:
    """Downloads MNIST and writes it as tfds array_record files in ``data_dir``; returns where it is.

    Needs TensorFlow and the ``importlib_resources`` package (the ``mnist`` extra:
    ``pip install -e '.[mnist]'``) and network; reading it afterwards needs neither. Whether the
    download can work is checked first, within ``_CONNECT_TIMEOUT_S`` seconds; a download or
    preparation that fails removes everything it created in the data directory.
    """
    missing = _missing_prepare_modules()
    if missing:
        # tfds 4.9.10 imports tensorflow to extract MNIST and importlib_resources to download,
        # and declares neither as a dependency.
        verb = "is" if len(missing) == 1 else "are"
        raise UserError(f"preparing MNIST with tensorflow-datasets needs {' and '.join(missing)}, "
                        f"which {verb} not installed: run `pip install -e '.[mnist]'` first, or use "
                        f"{_OTHER_SOURCES}")
    builder = _mnist_builder(data_dir)
    root = _tfds_root(builder)
    if builder.is_prepared():
        problem = _mnist_problem(data_dir, "train")
        if problem is not None:
            raise UserError(f"{problem[0]}: delete {builder.data_dir} or choose another --data-dir")
        return builder.data_dir
    unreachable = _unreachable(_download_urls(builder), _CONNECT_TIMEOUT_S)
    if unreachable is not None:
        raise UserError(f"MNIST cannot be downloaded: {unreachable}; without network, use {_OTHER_SOURCES}")
    # tfds creates the data directory and its parents as needed: remember the topmost one that
    # does not exist yet, and everything under it that does, to remove only what this call wrote.
    top = pathlib.Path(root).absolute()
    while not os.path.lexists(top.parent) and top.parent != top:
        top = top.parent
    before = _existing_paths(top)
    try:
        builder.download_and_prepare()
    except BaseException as err:
        # Any failure, Ctrl-C included: tfds leaves partial downloads (*.tmp.*) and empty folders.
        left = _remove_new(top, before)
        if not isinstance(err, Exception):
            raise
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        cleaned = (f"{len(left)} paths it wrote could not be removed, such as {left[0]}" if left
                   else "nothing it wrote was kept")
        raise UserError(f"preparing MNIST in {root} failed ({type(err).__name__}: {first_line}) and "
                        f"{cleaned}; without network, use {_OTHER_SOURCES}") from err
    return builder.data_dir


def _missing_prepare_modules() -> list[str]:
    """The modules tfds needs to download and extract MNIST that cannot be imported here."""
    missing = []
    for module in ("tensorflow", "importlib_resources"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    return missing


def _download_urls(builder) -> list[str]:
    """The URLs tfds downloads MNIST from: those its checksums register (it refuses any other), else URL."""
    urls = sorted(getattr(builder, "url_infos", None) or {})
    if not urls and getattr(builder, "URL", None):
        urls = [builder.URL]
    return urls


def _first_hop(url: str) -> tuple[str, int, str] | None:
    """Where downloading ``url`` connects first, (host, port, description): the proxy that ``requests``
    (tfds's downloader) takes from the environment for it, or the URL's own host; None if unparseable."""
    import requests.utils

    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    target = proxy if not proxy or "://" in proxy else f"http://{proxy}"  # requests' default scheme
    try:
        parts = urllib.parse.urlsplit(target or url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a malformed port: let tfds report it
        return None
    if not parts.hostname:
        return None
    where = f"{parts.hostname}:{port}"
    return parts.hostname, port, (f"the proxy {where} (for {url})" if proxy else f"{where} (for {url})")


def _unreachable(urls: list[str], timeout: float) -> str | None:
    """Why a TCP connection for one of ``urls`` fails within ``timeout`` seconds, or None if all connect."""
    hops: dict[tuple[str, int], tuple[str, int, str]] = {}
    for hop in map(_first_hop, urls):
        if hop is not None:
            hops.setdefault(hop[:2], hop)  # one connection per host and port, named by its first URL
    for host, port, where in hops.values():
        outcome: list[OSError | None] = []
        # Name resolution ignores the socket's timeout (a stalled resolver takes minutes), so the
        # attempt runs in a thread that is abandoned, not waited for, once the time is up.
        thread = threading.Thread(target=_connect, args=(host, port, timeout, outcome),
                                  name="mnist-reachability", daemon=True)
        thread.start()
        thread.join(timeout)
        if not outcome:
            return f"a connection to {where} got no answer within {timeout:g} s"
        if outcome[0] is not None:
            err = outcome[0]
            if isinstance(err, socket.gaierror):
                reason = f"the host name does not resolve: {err.strerror or err}"
            elif isinstance(err, TimeoutError):
                reason = f"no answer within {timeout:g} s"
            else:
                reason = err.strerror or str(err) or type(err).__name__
            return f"a connection to {where} failed ({reason})"
    return None


def _connect(host: str, port: int, timeout: float, outcome: list[OSError | None]) -> None:
    """Opens and closes one TCP connection to ``host``:``port``; appends the error to ``outcome``, or None."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        outcome.append(err)
    else:
        outcome.append(None)


def _existing_paths(top: pathlib.Path) -> set[pathlib.Path]:
    """Every path at or under ``top`` that exists now; a link is a path, not followed."""
    if not os.path.lexists(top):
        return set()
    found = {top}
    for folder, dirs, files in os.walk(top):
        found.update(pathlib.Path(folder, name) for name in (*dirs, *files))
    return found


def _remove_new(top: pathlib.Path, before: set[pathlib.Path]) -> list[pathlib.Path]:
    """Removes every path at or under ``top`` that is not in ``before``, deepest first; returns those left."""
    if not os.path.lexists(top):
        return []
    left = []
    entries = [pathlib.Path(folder, name) for folder, dirs, files in os.walk(top, topdown=False)
               for name in (*files, *dirs)]
    for path in [*entries, top]:  # os.walk lists a folder's contents before the folder
        if path in before:
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # empty by now: its new contents went first, and it held nothing else
            else:
                path.unlink()
        except OSError:
            left.append(path)
    return left


# --- raw IDX files ---------------------------------------------------------------------------


def _idx_candidates(folder: pathlib.Path, prefix: str, kind: str) -> list[pathlib.Path]:
    """Names an IDX file goes by: train-images-idx3-ubyte or train-images.idx3-ubyte, each with .gz or not."""
    stem, idx = kind.split("-", 1)  # e.g. "images", "idx3-ubyte"
    names = [f"{prefix}-{stem}-{idx}", f"{prefix}-{stem}.{idx}"]
    return [folder / (name + ext) for name in names for ext in (".gz", "")]


def _find_idx(folder: pathlib.Path, split: str, kind: str) -> pathlib.Path:
    """The IDX file of ``kind`` ("images-idx3-ubyte" or "labels-idx1-ubyte") for ``split`` in ``folder``."""
    for path in _idx_candidates(folder, _IDX_PREFIX[split], kind):
        if path.is_file():
            return path
    wanted = f"{_IDX_PREFIX[split]}-{kind}[.gz]"
    present = sorted(p.name for p in folder.iterdir() if "idx" in p.name and "ubyte" in p.name)
    others = [s for s in SPLITS if s != split
              and any(p.is_file() for p in _idx_candidates(folder, _IDX_PREFIX[s], kind))]
    hint = f" (use --split {others[0]})" if others else ""
    found = f"it holds {', '.join(present)}{hint}" if present else "it holds no IDX files"
    raise UserError(f"no {wanted} in {folder} for split {split!r}: {found}")


_GZIP_MAGIC = b"\x1f\x8b"  # every gzip file starts with these two bytes (RFC 1952)


def _hex(data: bytes) -> str:
    """Bytes as the hex pairs a person can compare with a file dump: ``1f 8b 08 00``."""
    return " ".join(f"{b:02x}" for b in data) or "nothing"


def _read_bytes(path: pathlib.Path) -> tuple[bytes, bool]:
    """The content of ``path``, gunzipped when it is gzip (decided by its first bytes, never its name),
    and whether it was."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw, False
    try:
        return gzip.decompress(raw), True
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise UserError(f"{path} is a truncated or corrupt gzip file: it starts with gzip's bytes 1f 8b but "
                        f"its {len(raw)} bytes do not decompress ({err})") from None


def _parse_idx(path: pathlib.Path, magic: int, ndim: int) -> np.ndarray:
    """Parses an unsigned-byte IDX file with ``magic`` and ``ndim`` dimensions into uint8 [d0, ..., dn].

    The file may be gzipped or not, whatever its name says; each message says which it was.
    """
    data, gzipped = _read_bytes(path)
    content = "its gunzipped content" if gzipped else "it is not gzip, and its content"
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise UserError(f"{path} is too short to be an IDX file: {content} is {len(data)} bytes long")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        what = "image" if magic == _IDX_IMAGES_MAGIC else "label"
        raise UserError(f"{path} has magic number {found}, not {magic} (an IDX {what} file): {content} "
                        f"starts with the bytes {_hex(data[:4])}")
    if len(data) < header:
        raise UserError(f"{path} is truncated: {content} is {len(data)} bytes long, shorter than its "
                        f"{header}-byte header")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    # In Python integers: a product in int64 wraps (4194304 x 2097152 x 2097152 is 2**64, 0 in int64).
    expected = header + math.prod(dims)
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        unpacked = " once gunzipped" if gzipped else ""
        raise UserError(f"{path} is {state}: it has {len(data)} bytes{unpacked}, and its header "
                        f"(dimensions {' x '.join(map(str, dims))}) promises {expected}")
    # Copy out of the bytes buffer so the arrays are ordinary writable ones.
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims).copy()


def _load_idx(folder_text: str, split: str) -> ImageSet:
    """Reads ``split`` from a folder of IDX files (train-* for "train", t10k-* for "test")."""
    if not folder_text:
        raise UserError("the idx source needs a folder: idx:DIR")
    folder = pathlib.Path(folder_text).expanduser()
    if not folder.is_dir():
        raise UserError(f"no folder at {folder} (from idx:{folder_text})")
    image_path = _find_idx(folder, split, "images-idx3-ubyte")
    label_path = _find_idx(folder, split, "labels-idx1-ubyte")
    images = _parse_idx(image_path, _IDX_IMAGES_MAGIC, 3)
    labels = _parse_idx(label_path, _IDX_LABELS_MAGIC, 1)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f"{image_path} holds {images.shape[1]}x{images.shape[2]} images, not 28x28")
    if len(images) != len(labels):
        raise UserError(f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels")
    return ImageSet(images, labels.astype(np.int32),
                    f"idx ({folder}: {image_path.name} + {label_path.name}, split={split}, "
                    f"{len(images)} images)")


# --- scikit-learn's digits -------------------------------------------------------------------


def _linear_resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Bilinear interpolation weights [size_out, size_in] with half-pixel centres (like jax.image.resize)."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0, size_in - 1)  # edge pixels repeat outwards
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = centres - low
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), low), 1 - frac)
    np.add.at(weights, (np.arange(size_out), high), frac)
    return weights


def digits_to_mnist(images: np.ndarray) -> np.ndarray:
    """Turns scikit-learn digits [N, 8, 8] in 0..16 into MNIST-like uint8 [N, 28, 28].

    Scaled to 0..255, resized bilinearly to a 20x20 box and padded by 4 pixels on each
    side, as MNIST centres its digits in a 20x20 box. Deterministic (numpy only).
    """
    weights = _linear_resize_matrix(images.shape[-1], _DIGITS_BOX)
    scaled = np.asarray(images, np.float64) * (255.0 / 16.0)
    boxes = np.einsum("ij,njk,lk->nil", weights, scaled, weights)
    pad = (IMAGE_SIZE - _DIGITS_BOX) // 2
    boxes = np.clip(np.rint(boxes), 0, 255).astype(np.uint8)
    return np.pad(boxes, ((0, 0), (pad, pad), (pad, pad)))


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits: (images float [1797, 8, 8] in 0..16, labels int [1797]).

    Read from the data file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, found
    without importing scikit-learn, whose ``datasets`` package takes seconds to import); through
    ``sklearn.datasets.load_digits`` when that file is not where it has always been.
    """
    spec = importlib.util.find_spec("sklearn")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = pathlib.Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if path is not None and path.is_file():
        table = np.loadtxt(gzip.open(path, "rt"), delimiter=",")
        if table.shape == (1797, 65):
            return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def _load_digits(split: str, note: str | None = None) -> ImageSet:
    """scikit-learn's 1797 digits resized to 28x28: "train" is the first 1437, "test" the last 360."""
    all_images, all_labels = _digits()
    part = slice(0, _DIGITS_TRAIN) if split == "train" else slice(_DIGITS_TRAIN, None)
    images = digits_to_mnist(all_images[part])
    labels = np.asarray(all_labels[part], np.int32)
    prefix = f"{note}; " if note else ""
    return ImageSet(images, labels, f"digits ({prefix}scikit-learn's 8x8 handwritten digits resized "
                                    f"to 28x28, split={split}, {len(images)} images)")


# --- auto ------------------------------------------------------------------------------------


def _default_tfds_root(data_dir: str | None) -> pathlib.Path:
    """The tfds data directory MNIST would be read from: ``data_dir``, $TFDS_DATA_DIR, or tfds's own
    default, ~/tensorflow_datasets (found without importing tensorflow-datasets)."""
    return pathlib.Path(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def _load_auto(split: str, data_dir: str | None) -> ImageSet:
    """MNIST when tfds has it prepared (checked without downloading), otherwise digits; says which.

    A data directory without an ``mnist`` folder is answered without importing tensorflow-datasets
    (a second of start-up saved where MNIST was never prepared); otherwise tfds decides.
    """
    root = _default_tfds_root(data_dir)
    if not (root / "mnist").is_dir():
        return _load_digits(split, note=f"auto: MNIST is not prepared in the tfds data dir {root}; to use "
                                         f"it, run {_prepare_command(data_dir)} once (it needs TensorFlow "
                                         f"and network)")
    problem = _mnist_problem(data_dir, split)
    if problem is None:
        return _load_mnist(split, data_dir, note="auto: MNIST is prepared in tfds")
    reason, remedy = problem
    return _load_digits(split, note=f"auto: {reason}; to use it, {remedy}")


__all__ = ["IMAGE_SIZE", "SOURCES", "SPLITS", "ImageSet", "digits_to_mnist", "load_images",
           "prepare_mnist"]
