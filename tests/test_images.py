"""Image sources: mnist (tfds mock data and real array_record files), idx:DIR (good and bad), digits, auto."""

import gzip
import importlib.resources
import importlib.resources.abc
import importlib.util
import pathlib
import sys
import time

import numpy as np
import pytest

from jaxgan.data import images as images_lib
from jaxgan.data.images import ImageSet, load_images
from jaxgan.errors import UserError


def _write_idx(path: pathlib.Path, array: np.ndarray, magic: int, *, cut: int = 0) -> None:
    """Writes ``array`` (uint8) as an IDX file with ``magic``, gzipped if the name ends in .gz."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    data = data[:len(data) - cut]
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _random_set(count: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images [count, size, size] and labels [count] in 0..9."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (count, size, size), dtype=np.uint8),
            rng.integers(0, 10, (count,), dtype=np.uint8))


def _write_split(folder: pathlib.Path, prefix: str, images: np.ndarray, labels: np.ndarray,
                 ext: str = ".gz") -> None:
    """Writes one split (prefix "train" or "t10k") as an images file and a labels file."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images, 2051)
    _write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels, 2049)


def _assert_valid(image_set: ImageSet, count: int) -> None:
    """The ImageSet contract: uint8 [count, 28, 28] and int32 labels [count] in 0..9."""
    assert image_set.images.dtype == np.uint8
    assert image_set.images.shape == (count, 28, 28)
    assert image_set.labels is not None
    assert image_set.labels.dtype == np.int32
    assert image_set.labels.shape == (count,)
    assert image_set.labels.min() >= 0 and image_set.labels.max() <= 9


# --- mnist ------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_through_tfds_mock_data(tmp_path, split):
    import tensorflow_datasets as tfds

    # USE_CODE (what AUTO falls back to: tfds ships no MNIST metadata files) mocks
    # builder.as_data_source, so tfds.data_source returns 13 random records without any files.
    with tfds.testing.mock_data(num_examples=13, policy=tfds.testing.MockPolicy.USE_CODE):
        image_set = load_images("mnist", split=split, data_dir=str(tmp_path))
    _assert_valid(image_set, 13)
    assert image_set.source.startswith(f"mnist (tfds, split={split}, 13 images")
    assert len({image.tobytes() for image in image_set.images}) == 13  # the mock's records, not one repeated


def _prepare_tiny_mnist(data_dir: pathlib.Path, monkeypatch, images: np.ndarray,
                        labels: np.ndarray) -> None:
    """Writes a real tfds MNIST array_record dataset with only a "test" split holding ``images``."""
    import PIL.Image
    import tensorflow_datasets as tfds

    builder_cls = tfds.builder_cls("mnist")

    def split_generators(self, dl_manager):
        return [tfds.core.SplitGenerator(name="test", gen_kwargs={})]

    def generate_examples(self):
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            # A PIL image: tfds encodes a numpy image with TensorFlow, a PIL one without.
            yield index, {"image": PIL.Image.fromarray(image), "label": int(label)}

    # The generator is replaced so nothing is downloaded; the writing and the reading are tfds's own.
    monkeypatch.setattr(builder_cls, "_split_generators", split_generators)
    monkeypatch.setattr(builder_cls, "_generate_examples", generate_examples)
    if importlib.util.find_spec("importlib_resources") is None:
        # tfds 4.9.10 imports this undeclared backport on its download path; the stdlib has the same API.
        monkeypatch.setitem(sys.modules, "importlib_resources", importlib.resources)
    images_lib._mnist_builder(str(data_dir)).download_and_prepare()


def test_mnist_read_from_real_array_record_files(tmp_path, monkeypatch):
    # mock_data replaces as_data_source wholesale; only real files exercise tfds's decoding path.
    images, labels = _random_set(24, seed=1)
    _prepare_tiny_mnist(tmp_path, monkeypatch, images, labels)

    image_set = load_images("mnist", split="test", data_dir=str(tmp_path))
    _assert_valid(image_set, 24)
    assert "24 images" in image_set.source and str(tmp_path) in image_set.source
    # tfds shuffles records when it writes them, so match images to the originals by content.
    order = {image.tobytes(): i for i, image in enumerate(images)}
    index = np.array([order[image.tobytes()] for image in image_set.images])
    np.testing.assert_array_equal(np.sort(index), np.arange(24))
    np.testing.assert_array_equal(image_set.labels, labels[index])

    with pytest.raises(UserError, match=r"no 'train' split \(it has test\).*prepare_mnist"):
        load_images("mnist", split="train", data_dir=str(tmp_path))
    chosen = load_images("auto", split="test", data_dir=str(tmp_path))
    assert chosen.source.startswith("mnist (auto: MNIST is prepared in tfds; tfds, split=test, 24 images")
    fallback = load_images("auto", split="train", data_dir=str(tmp_path))
    assert fallback.source.startswith("digits (auto: MNIST in the tfds data dir")
    assert "no 'train' split" in fallback.source


def test_mnist_unprepared_says_how_to_prepare_and_names_the_alternatives(tmp_path):
    data_dir = str(tmp_path / "tfds")
    with pytest.raises(UserError) as info:
        load_images("mnist", data_dir=data_dir)
    message = str(info.value)
    assert f"MNIST is not prepared in the tfds data dir {data_dir}" in message
    assert f"python -m experiments.prepare_mnist --data-dir {data_dir}" in message
    assert "pip install -e '.[mnist]'" in message
    assert "idx:DIR" in message and "digits" in message
    assert message.count(". ") == 0 and "\n" not in message  # one sentence


def test_prepare_mnist_without_tensorflow_says_what_to_install(tmp_path, monkeypatch, capsys):
    from experiments._cli import run
    from experiments.prepare_mnist import main

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(UserError, match=r"needs tensorflow.*pip install -e '\.\[mnist\]'.*digits"):
        images_lib.prepare_mnist(str(tmp_path))
    with pytest.raises(SystemExit) as info:
        run(main, ["--data-dir", str(tmp_path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: preparing MNIST with tensorflow-datasets needs")
    assert not (tmp_path / "mnist").exists()  # nothing half-written


def _tree(folder: pathlib.Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (relative) with a file's content, or None for a folder."""
    return {str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
            for path in sorted(folder.rglob("*"))}


@pytest.fixture
def prepare_without_tensorflow(monkeypatch):
    """Lets ``prepare_mnist`` past its TensorFlow check (nothing in these tests reaches TensorFlow);
    returns tfds's MNIST builder class, to patch further."""
    import tensorflow_datasets as tfds

    monkeypatch.setattr(images_lib, "_missing_prepare_modules", lambda: [])
    if importlib.util.find_spec("importlib_resources") is None:
        # tfds 4.9.10 imports this undeclared backport on its download path; the stdlib has the same API.
        monkeypatch.setitem(sys.modules, "importlib_resources", importlib.resources)
    return tfds.builder_cls("mnist")


def _forbid_download(monkeypatch, builder_cls) -> None:
    """Makes tfds's download_and_prepare fail the test if it is called."""

    def no_download(self, *args, **kwargs):
        raise AssertionError("download_and_prepare ran although the download cannot work")

    monkeypatch.setattr(builder_cls, "download_and_prepare", no_download)


def _mnist_host() -> tuple[str, int]:
    """The host and port of the URL tfds's MNIST builder downloads from (its class's URL attribute)."""
    import urllib.parse

    import tensorflow_datasets as tfds

    url = urllib.parse.urlsplit(tfds.builder_cls("mnist").URL)
    return url.hostname, url.port or {"https": 443, "http": 80}[url.scheme]


def _no_proxy(monkeypatch) -> None:
    """Clears the proxy variables requests (tfds's downloader) reads, so the check connects directly."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize("failure", ["no-dns", "refused", "no-answer"])
def test_prepare_mnist_offline_says_so_within_seconds_and_writes_nothing(
        tmp_path, monkeypatch, capsys, prepare_without_tensorflow, failure):
    import socket
    import threading

    from experiments._cli import run
    from experiments.prepare_mnist import main

    _no_proxy(monkeypatch)
    _forbid_download(monkeypatch, prepare_without_tensorflow)
    monkeypatch.setattr(images_lib, "_CONNECT_TIMEOUT_S", 1.0)
    release = threading.Event()
    addresses = []

    def create_connection(address, timeout=None, *args, **kwargs):
        addresses.append(address)
        if failure == "no-dns":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if failure == "refused":
            raise ConnectionRefusedError(111, "Connection refused")
        release.wait(60)  # a resolver or a firewall that never answers: longer than the check waits
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    data_dir = tmp_path / "tfds"
    try:
        start = time.perf_counter()
        with pytest.raises(UserError) as info:
            images_lib.prepare_mnist(str(data_dir))
        elapsed = time.perf_counter() - start
        with pytest.raises(SystemExit) as exit_info:
            run(main, ["--data-dir", str(data_dir)])
    finally:
        release.set()
    message = str(info.value)
    host, port = _mnist_host()
    assert addresses[0] == (host, port)  # the host tfds downloads MNIST from, checked directly
    assert message.startswith(f"MNIST cannot be downloaded: a connection to {host}:{port} (for https://")
    reason = {"no-dns": "failed (the host name does not resolve: Name or service not known)",
              "refused": "failed (Connection refused)", "no-answer": "got no answer within 1 s"}[failure]
    assert reason in message
    assert message.endswith("without network, use --dataset idx:DIR (a folder of raw IDX files) or "
                            "--dataset digits (scikit-learn's 8x8 digits, offline)")
    assert "\n" not in message and ". " not in message  # one sentence
    # Bounded by the check's 1 s timeout (plus slack for a loaded machine), however long the
    # connection attempt itself would hang; tfds's own retries took about 3.5 minutes here.
    assert elapsed < 4.0
    if failure == "no-answer":
        assert elapsed >= 1.0
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not data_dir.exists() and list(tmp_path.iterdir()) == []  # nothing written


def test_prepare_mnist_checks_the_proxy_the_download_would_use(tmp_path, monkeypatch,
                                                              prepare_without_tensorflow):
    import socket

    _no_proxy(monkeypatch)
    _forbid_download(monkeypatch, prepare_without_tensorflow)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    addresses = []

    def create_connection(address, timeout=None, *args, **kwargs):
        addresses.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    with pytest.raises(UserError, match=r"^MNIST cannot be downloaded: a connection to the proxy "
                                        r"proxy\.invalid:3128 \(for https://\S+\) failed "
                                        r"\(Connection refused\)"):
        images_lib.prepare_mnist(str(tmp_path / "tfds"))
    assert addresses == [("proxy.invalid", 3128)]


class _Connection:
    """What a successful ``socket.create_connection`` returns, as far as the check uses it."""

    def close(self):
        """Nothing to close."""


@pytest.mark.parametrize("stop", [ConnectionError, KeyboardInterrupt])
@pytest.mark.parametrize("existing", [True, False], ids=["existing-dir", "new-dir"])
def test_a_failed_prepare_removes_what_it_wrote_and_only_that(tmp_path, monkeypatch,
                                                              prepare_without_tensorflow, stop, existing):
    import socket

    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: _Connection())
    builder_cls = prepare_without_tensorflow
    data_dir = tmp_path / "tfds" if existing else tmp_path / "new" / "tfds"
    if existing:  # another dataset's download and files of the user's in the folders tfds writes to
        (data_dir / "downloads" / "other").mkdir(parents=True)
        (data_dir / "downloads" / "other" / "part.gz").write_bytes(b"someone else's download")
        (data_dir / "downloads" / "extracted").mkdir()
        (data_dir / "mnist").mkdir()
        (data_dir / "mnist" / "notes.txt").write_text("mine")
    (tmp_path / "beside.txt").write_text("beside the data dir")
    before = _tree(tmp_path)
    during = {}

    def split_generators(self, dl_manager):
        # Called by tfds's download_and_prepare once it has made its folders: write a partial
        # download where tfds's downloader does, then fail as a lost connection or Ctrl-C would.
        partial = dl_manager.download_dir / "mnist" / "cvdf-datasets_mnist_t10k-images.gz.tmp.1234"
        partial.mkdir(parents=True)
        (partial / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b half a file")
        during.update(_tree(tmp_path))
        raise stop("connection lost halfway")

    monkeypatch.setattr(builder_cls, "_split_generators", split_generators)
    if stop is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            images_lib.prepare_mnist(str(data_dir))
    else:
        with pytest.raises(UserError, match=r"^preparing MNIST in \S+ failed \(ConnectionError: connection "
                                            r"lost halfway\) and nothing it wrote was kept; without network, "
                                            r"use --dataset idx:DIR .* or --dataset digits"):
            images_lib.prepare_mnist(str(data_dir))
    written = set(during) - set(before)
    assert any(name.endswith("t10k-images-idx3-ubyte.gz") for name in written)  # something to remove
    assert any("/incomplete." in name for name in written)  # tfds's own unfinished folder too
    assert _tree(tmp_path) == before  # all of it gone; everything that was there before, as it was


def test_a_failed_prepare_names_what_it_could_not_remove(tmp_path, monkeypatch, prepare_without_tensorflow):
    import socket

    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: _Connection())
    data_dir = tmp_path / "tfds"

    def download_and_prepare(self, *args, **kwargs):
        (data_dir / "downloads").mkdir(parents=True)
        (data_dir / "downloads" / "stuck.tmp").write_bytes(b"")
        (data_dir / "downloads" / "gone.tmp").write_bytes(b"")
        raise OSError(28, "No space left on device")

    unlink = pathlib.Path.unlink

    def refusing_unlink(path, *args, **kwargs):
        if path.name == "stuck.tmp":
            raise PermissionError(13, "Permission denied")
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(prepare_without_tensorflow, "download_and_prepare", download_and_prepare)
    monkeypatch.setattr(pathlib.Path, "unlink", refusing_unlink)
    with pytest.raises(UserError) as info:
        images_lib.prepare_mnist(str(data_dir))
    message = str(info.value)
    assert ("failed (OSError: [Errno 28] No space left on device) and 3 paths it wrote could not be "
            f"removed, such as {data_dir / 'downloads' / 'stuck.tmp'}; without network") in message
    assert _tree(tmp_path) == {"tfds": None, "tfds/downloads": None, "tfds/downloads/stuck.tmp": b""}


# --- idx:DIR ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".gz", ""])
@pytest.mark.parametrize("split,prefix", [("train", "train"), ("test", "t10k")])
def test_idx_round_trips_exactly(tmp_path, ext, split, prefix):
    images, labels = _random_set(7)
    _write_split(tmp_path, prefix, images, labels, ext)
    # The other split holds different data, so reading the wrong one would show.
    other = "t10k" if prefix == "train" else "train"
    _write_split(tmp_path, other, *_random_set(5, seed=2), ext)

    image_set = load_images(f"idx:{tmp_path}", split=split)
    _assert_valid(image_set, 7)
    np.testing.assert_array_equal(image_set.images, images)
    np.testing.assert_array_equal(image_set.labels, labels.astype(np.int32))
    assert f"{prefix}-images-idx3-ubyte{ext} + {prefix}-labels-idx1-ubyte{ext}" in image_set.source
    assert f"split={split}, 7 images" in image_set.source


def test_idx_accepts_the_dotted_file_names(tmp_path):
    images, labels = _random_set(3)
    _write_idx(tmp_path / "t10k-images.idx3-ubyte", images, 2051)
    _write_idx(tmp_path / "t10k-labels.idx1-ubyte", labels, 2049)
    np.testing.assert_array_equal(load_images(f"idx:{tmp_path}", split="test").images, images)


def _bad_wrong_magic(folder):
    images, labels = _random_set(4)
    _write_split(folder, "train", images, labels)
    _write_idx(folder / "train-images-idx3-ubyte.gz", images, 2049)


def _bad_truncated_images(folder):
    images, labels = _random_set(4)
    _write_split(folder, "train", images, labels, ext="")
    _write_idx(folder / "train-images-idx3-ubyte", images, 2051, cut=100)


def _bad_truncated_gzip(folder):
    images, labels = _random_set(4)
    _write_split(folder, "train", images, labels)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])


def _bad_count_mismatch(folder):
    images, labels = _random_set(4)
    _write_split(folder, "train", images, labels[:3])


def _bad_not_28x28(folder):
    _write_split(folder, "train", *_random_set(4, size=20))


def _bad_only_test_split(folder):
    _write_split(folder, "t10k", *_random_set(4))


def _bad_labels_missing(folder):
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", _random_set(4)[0], 2051)


def _bad_empty_folder(folder):
    folder.mkdir()


def _bad_no_folder(folder):
    pass


@pytest.mark.parametrize("make,pattern", [
    (_bad_wrong_magic, r"train-images-idx3-ubyte\.gz has magic number 2049, not 2051 \(an IDX image file\)"),
    (_bad_truncated_images, r"train-images-idx3-ubyte is truncated: it has 3052 bytes, .* promises 3152"),
    (_bad_truncated_gzip, r"train-images-idx3-ubyte\.gz is a truncated or corrupt gzip file"),
    (_bad_count_mismatch, r"train-images-idx3-ubyte\.gz has 4 images but .*train-labels-idx1-ubyte\.gz "
                          r"has 3 labels"),
    (_bad_not_28x28, r"train-images-idx3-ubyte\.gz holds 20x20 images, not 28x28"),
    (_bad_only_test_split, r"no train-images-idx3-ubyte\[\.gz\] in .* for split 'train': it holds "
                           r"t10k-images-idx3-ubyte\.gz, t10k-labels-idx1-ubyte\.gz \(use --split test\)"),
    (_bad_labels_missing, r"no train-labels-idx1-ubyte\[\.gz\] in .*: it holds train-images-idx3-ubyte\.gz$"),
    (_bad_empty_folder, r"no train-images-idx3-ubyte\[\.gz\] in .*: it holds no IDX files"),
    (_bad_no_folder, r"no folder at .*data"),
])
def test_idx_bad_input_is_one_clear_sentence(tmp_path, make, pattern):
    folder = tmp_path / "data"
    make(folder)
    with pytest.raises(UserError, match=pattern) as info:
        load_images(f"idx:{folder}")
    assert "\n" not in str(info.value)


def test_the_real_mnist_split_is_looked_for_in_the_variable_first(tmp_path, monkeypatch):
    import conftest

    images, labels = _random_set(3)
    _write_split(tmp_path / "shared", "t10k", images, labels)
    monkeypatch.setattr(conftest, "SHARED_MNIST", tmp_path / "shared")
    monkeypatch.delenv(conftest.MNIST_ENV, raising=False)
    assert conftest.real_mnist_dir() == tmp_path / "shared"
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(conftest.MNIST_ENV, str(tmp_path / "empty"))
    assert conftest.real_mnist_dir() is None  # the variable wins, even over a folder that has the files
    _write_split(tmp_path / "plain", "t10k", images, labels, ext="")
    monkeypatch.setenv(conftest.MNIST_ENV, str(tmp_path / "plain"))
    assert conftest.real_mnist_dir() == tmp_path / "plain"  # .gz or not
    (tmp_path / "plain" / "t10k-labels-idx1-ubyte").unlink()
    assert conftest.real_mnist_dir() is None  # both files, or none
    monkeypatch.setenv(conftest.MNIST_ENV, "")
    assert conftest.real_mnist_dir() == tmp_path / "shared"  # an empty variable is no variable
    reason = conftest.MNIST_SKIP_REASON
    assert "JAXGAN_MNIST_DIR" in reason and "../shared/data/mnist" in reason
    assert "t10k-images-idx3-ubyte[.gz]" in reason and "t10k-labels-idx1-ubyte[.gz]" in reason


def test_idx_reads_the_real_mnist_test_split(mnist_dir):
    image_set = load_images(f"idx:{mnist_dir}", split="test")
    _assert_valid(image_set, 10_000)
    assert image_set.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(image_set.labels, minlength=10).min() > 800  # every digit present
    assert 30 < image_set.images.mean() < 37  # MNIST's mean intensity is about 0.13 * 255
    with pytest.raises(UserError, match=r"use --split test"):
        load_images(f"idx:{mnist_dir}", split="train")


def test_idx_tells_gzip_by_its_first_bytes_not_by_its_name(tmp_path):
    images, labels = _random_set(6)
    # Uncompressed IDX bytes under the .gz names, and gzip bytes under the plain names.
    plain, zipped = tmp_path / "plain", tmp_path / "zipped"
    plain.mkdir()
    zipped.mkdir()
    for kind, array, magic in (("images-idx3", images, 2051), ("labels-idx1", labels, 2049)):
        _write_idx(plain / f"t10k-{kind}-ubyte", array, magic)
        (plain / f"t10k-{kind}-ubyte").rename(plain / f"t10k-{kind}-ubyte.gz")
        _write_idx(zipped / f"train-{kind}-ubyte.gz", array, magic)
        (zipped / f"train-{kind}-ubyte.gz").rename(zipped / f"train-{kind}-ubyte")
    assert (zipped / "train-images-idx3-ubyte").read_bytes()[:2] == b"\x1f\x8b"
    for folder, split in ((plain, "test"), (zipped, "train")):
        image_set = load_images(f"idx:{folder}", split=split)
        np.testing.assert_array_equal(image_set.images, images)
        np.testing.assert_array_equal(image_set.labels, labels.astype(np.int32))


def test_the_real_mnist_files_uncompressed_under_their_gz_names_are_read(tmp_path, mnist_dir):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        source = mnist_dir / f"{name}.gz" if (mnist_dir / f"{name}.gz").is_file() else mnist_dir / name
        data = source.read_bytes()
        # The folder may hold them gzipped or not; here they are plain bytes under the .gz names.
        (tmp_path / f"{name}.gz").write_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    image_set = load_images(f"idx:{tmp_path}", split="test")
    _assert_valid(image_set, 10_000)
    assert image_set.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    np.testing.assert_array_equal(image_set.images, load_images(f"idx:{mnist_dir}", split="test").images)


@pytest.mark.parametrize("name, content, pattern", [
    ("train-images-idx3-ubyte.gz", lambda data: gzip.compress(data)[:-200],
     r"^\S+train-images-idx3-ubyte\.gz is a truncated or corrupt gzip file: it starts with gzip's bytes "
     r"1f 8b but its \d+ bytes do not decompress \(.+\)$"),
    ("train-images-idx3-ubyte", lambda data: gzip.compress(data)[:-200],
     r"^\S+train-images-idx3-ubyte is a truncated or corrupt gzip file: it starts with gzip's bytes 1f 8b"),
    ("train-images-idx3-ubyte.gz", lambda data: b"\x89PNG\r\n" + data,
     r"^\S+train-images-idx3-ubyte\.gz has magic number 2303741511, not 2051 \(an IDX image file\): it is "
     r"not gzip, and its content starts with the bytes 89 50 4e 47$"),
    ("train-images-idx3-ubyte", lambda data: gzip.compress(data[:-100]),
     r"^\S+train-images-idx3-ubyte is truncated: it has 3052 bytes once gunzipped, and its header "
     r"\(dimensions 4 x 28 x 28\) promises 3152$"),
    ("train-images-idx3-ubyte.gz", lambda data: b"\x00\x00",
     r"^\S+train-images-idx3-ubyte\.gz is too short to be an IDX file: it is not gzip, and its content is 2 "
     r"bytes long$"),
], ids=["truncated-gzip-named-gz", "truncated-gzip-named-plain", "png-named-gz", "short-idx-in-gzip",
        "two-bytes-named-gz"])
def test_a_damaged_idx_file_says_what_was_found(tmp_path, name, content, pattern):
    images, labels = _random_set(4)
    _write_split(tmp_path, "train", images, labels, ext="")
    (tmp_path / "train-images-idx3-ubyte").unlink()
    header = (2051).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    (tmp_path / name).write_bytes(content(header + images.tobytes()))
    with pytest.raises(UserError, match=pattern):
        load_images(f"idx:{tmp_path}")


# --- digits and auto ---------------------------------------------------------------------------


def test_digits_are_mnist_like_and_deterministic():
    train = load_images("digits", split="train")
    test = load_images("digits", split="test")
    _assert_valid(train, 1437)
    _assert_valid(test, 360)
    assert "scikit-learn's 8x8 handwritten digits resized to 28x28" in train.source
    assert set(train.labels.tolist()) == set(range(10)) == set(test.labels.tolist())
    np.testing.assert_array_equal(load_images("digits").images, train.images)

    images = train.images.astype(np.float64)
    assert (images.max(axis=(1, 2)) > 200).all()  # every digit has ink, none is blank
    assert not images[:, :4].any() and not images[:, -4:].any()  # the 4-pixel frame stays empty
    assert not images[:, :, :4].any() and not images[:, :, -4:].any()
    grid = np.arange(28)
    mass = images.sum(axis=(1, 2))
    rows = (images.sum(axis=2) @ grid) / mass
    cols = (images.sum(axis=1) @ grid) / mass
    assert abs(rows.mean() - 13.5) < 1.5 and abs(cols.mean() - 13.5) < 1.5  # centred, like MNIST


def test_digits_resize_matches_jax_image_resize():
    import jax
    from sklearn.datasets import load_digits

    small = load_digits().images[:50] * (255.0 / 16.0)
    expected = jax.image.resize(small, (50, 20, 20), method="linear")
    ours = images_lib.digits_to_mnist(load_digits().images[:50])[:, 4:24, 4:24]
    assert np.abs(ours.astype(np.float64) - np.asarray(expected)).max() <= 0.5 + 1e-3


def test_auto_without_mnist_picks_digits_and_says_so(tmp_path):
    image_set = load_images("auto", data_dir=str(tmp_path))
    _assert_valid(image_set, 1437)
    assert image_set.source.startswith(
        f"digits (auto: MNIST is not prepared in the tfds data dir {tmp_path}; to use it, run `pip install")
    assert "scikit-learn's 8x8 handwritten digits" in image_set.source


def test_unknown_source_and_split_are_user_errors():
    with pytest.raises(UserError, match=r"unknown image source 'cifar'; the sources are mnist, idx:DIR, "
                                        r"digits, auto"):
        load_images("cifar")
    with pytest.raises(UserError, match=r"unknown split 'validation'; the splits are train, test"):
        load_images("digits", split="validation")
    with pytest.raises(UserError, match=r"needs a folder"):
        load_images("idx:")


def test_image_set_rejects_wrong_shapes_and_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(np.zeros((2, 28, 28), np.float32), None, "x")
    with pytest.raises(ValueError, match="int32"):
        ImageSet(np.zeros((2, 28, 28), np.uint8), np.zeros((3,), np.int32), "x")


def test_digits_and_auto_start_without_importing_sklearn_or_tfds(tmp_path):
    """The digits come from scikit-learn's own data file, equal to load_digits; auto with no MNIST on
    disk says so without importing tensorflow-datasets (each takes seconds to import)."""
    import subprocess
    import sys

    code = ("import sys; from jaxgan.data.images import load_images; "
            f"s = load_images('auto', data_dir={str(tmp_path)!r}); "
            "print(s.source.split(';')[0], 'tensorflow_datasets' in sys.modules, 'sklearn' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() [-2:] == ["False", "False"], done.stdout + done.stderr
    from sklearn.datasets import load_digits

    from jaxgan.data.images import _digits

    images, labels = _digits()
    reference = load_digits()
    np.testing.assert_array_equal(images, reference.images)
    np.testing.assert_array_equal(labels, reference.target)
