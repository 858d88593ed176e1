"""Find Caltech101 on disk, or download it once from its official archive.

The official CaltechDATA record (mzrjq-6wc02) serves ``caltech-101.zip``, which wraps
``caltech-101/101_ObjectCategories.tar.gz``. We download the zip with :mod:`pooch` (progress
bar, temporary file moved into place only when complete), check the MD5 of the inner
archive (the value other loaders verify), and extract it safely and atomically: into a
temporary folder beside the cache, then renamed into place, then a marker file written last.
A folder without its marker is never trusted as a cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pooch

CALTECH101_URL = "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"
CALTECH101_MD5 = "b224c7392d521a49829488ab0f1120d9"
ZIP_NAME = "caltech-101.zip"
INNER_ARCHIVE = "caltech-101/101_ObjectCategories.tar.gz"
FOLDER = "101_ObjectCategories"
MARKER = FOLDER + ".complete"
DATA_ENV = "CALTECH101_DIR"
CACHE_ENV = "BOOK_CACHE_DIR"


def cache_dir(directory: Path | str | None = None) -> Path:
    """The book's cache folder: ``directory``, else ``$BOOK_CACHE_DIR``, else
    ``~/.cache/wrong-labels-book``."""
    if directory is not None:
        return Path(directory).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "wrong-labels-book"


def how_to_provide(cache: Path, url: str = CALTECH101_URL) -> str:
    """Step-by-step instructions for providing Caltech101 by hand."""
    return (
        "To provide Caltech101 yourself:\n"
        f"  1. download {url}\n"
        f"  2. either put {ZIP_NAME} into {cache} and run this again (it is then verified "
        "and extracted without a download),\n"
        f"  3. or unzip it, extract {INNER_ARCHIVE} (tar -xzf) and point the book at the "
        f"resulting folder: export {DATA_ENV}=/path/to/{FOLDER}"
    )


def find_data_dir(
    data_dir: Path | str | None = None,
    *,
    cache: Path | str | None = None,
    download: bool = True,
    url: str = CALTECH101_URL,
    md5: str = CALTECH101_MD5,
) -> Path:
    """Locate the ``101_ObjectCategories`` folder, downloading it if needed.

    Parameters
    ----------
    data_dir
        An existing ``101_ObjectCategories`` folder; ``None`` uses ``$CALTECH101_DIR``,
        then the cache, then a download.
    cache
        Cache folder (see :func:`cache_dir`).
    download
        Whether a missing cache may be filled by downloading.
    url, md5
        Archive URL and the MD5 of its inner ``101_ObjectCategories.tar.gz``.

    Raises
    ------
    FileNotFoundError
        When an explicit folder does not exist, or no copy is available and none may be
        downloaded; the message says how to provide the data.
    """
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            source = "data_dir" if data_dir is not None else f"${DATA_ENV}"
            raise FileNotFoundError(
                f"{source} points at {path}, which is not a folder. It must be the extracted "
                f"'{FOLDER}' folder (holding one sub-folder per class).\n"
                + how_to_provide(cache_dir(cache), url)
            )
        return path
    root = cache_dir(cache)
    if is_complete(root, md5):
        return root / FOLDER
    if not download:
        raise FileNotFoundError(f"Caltech101 is not in {root}.\n" + how_to_provide(root, url))
    return download_caltech101(root, url=url, md5=md5)


def is_complete(root: Path, md5: str = CALTECH101_MD5) -> bool:
    """Whether ``root`` holds a finished extraction of the archive with checksum ``md5``."""
    marker = root / MARKER
    return (
        marker.is_file()
        and marker.read_text(encoding="utf-8").strip() == md5
        and (root / FOLDER).is_dir()
    )


def download_caltech101(
    cache: Path | str | None = None,
    *,
    url: str = CALTECH101_URL,
    md5: str = CALTECH101_MD5,
    progressbar: bool = True,
    keep_archive: bool = False,
) -> Path:
    """Download, verify and extract Caltech101 into the cache; return its folder.

    Raises
    ------
    FileNotFoundError
        When the download fails (no network, say); the message says how to provide the data.
    ValueError
        When the inner archive's MD5 differs from ``md5`` or a member escapes the target.
    """
    root = cache_dir(cache)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    shutil.rmtree(root / FOLDER, ignore_errors=True)  # unmarked, so unfinished
    archive = fetch_archive(root, url, progressbar)
    work = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        inner = extract_inner_archive(archive, work)
        check_md5(inner, md5, archive)
        safe_extract_tar(inner, work / "out")
        extracted = work / "out" / FOLDER
        if not extracted.is_dir():
            raise ValueError(f"{INNER_ARCHIVE} in {archive} holds no '{FOLDER}' folder.")
        os.replace(extracted, root / FOLDER)
        write_marker(root, md5)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return root / FOLDER


def fetch_archive(root: Path, url: str, progressbar: bool = True) -> Path:
    """Download ``url`` to ``root/caltech-101.zip`` unless it is already there."""
    target = root / ZIP_NAME
    if not target.exists():
        print(f"Downloading Caltech101 (about 130 MB) from {url}")
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # pooch's INFO lines suggest hashes we do not use
    try:
        path = pooch.retrieve(
            url,
            known_hash=None,
            fname=ZIP_NAME,
            path=root,
            downloader=_file_downloader if url.startswith("file:") else None,
            progressbar=progressbar,
        )
    except Exception as err:  # requests, socket and URL errors alike mean "no data"
        raise FileNotFoundError(
            f"Could not download Caltech101 from {url} ({type(err).__name__}: {err}).\n"
            + how_to_provide(root, url)
        ) from err
    finally:
        logger.setLevel(level)
    return Path(path)


def _file_downloader(url: str, output_file: Any, pooch_instance: Any) -> None:
    """Copy a ``file://`` URL (pooch only speaks http, ftp, sftp and doi)."""
    with urllib.request.urlopen(url) as src, open(output_file, "wb") as dst:
        shutil.copyfileobj(src, dst)


def extract_inner_archive(archive: Path, work: Path) -> Path:
    """Copy ``caltech-101/101_ObjectCategories.tar.gz`` out of the zip into ``work``."""
    target = work / Path(INNER_ARCHIVE).name
    try:
        with (
            zipfile.ZipFile(archive) as zf,
            zf.open(INNER_ARCHIVE) as src,
            open(target, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, KeyError) as err:
        archive.unlink(missing_ok=True)
        raise ValueError(
            f"{archive} is not the Caltech101 zip (it lacks {INNER_ARCHIVE}: {err}). "
            "It was deleted; run again to download it afresh."
        ) from err
    return target


def check_md5(path: Path, md5: str, archive: Path) -> None:
    """Raise ``ValueError`` (and delete ``archive``) when ``path``'s MD5 is not ``md5``."""
    actual = pooch.file_hash(str(path), alg="md5")
    if actual != md5:
        archive.unlink(missing_ok=True)
        raise ValueError(
            f"Checksum mismatch for {INNER_ARCHIVE}: MD5 {actual}, expected {md5}. The "
            "download is damaged or not the official archive; it was deleted and nothing was "
            "extracted. Run again to download it afresh."
        )


def check_member(member: tarfile.TarInfo, target: Path) -> None:
    """Raise ``ValueError`` when extracting ``member`` could write outside ``target``."""
    root = os.path.realpath(target)

    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    name = member.name
    if os.path.isabs(name) or not inside(os.path.join(root, name)):
        raise ValueError(f"Refusing archive member {name!r}: it points outside {target}.")
    if member.issym():
        link = os.path.join(root, os.path.dirname(name), member.linkname)
        if os.path.isabs(member.linkname) or not inside(link):
            raise ValueError(f"Refusing symbolic link {name!r} -> {member.linkname!r}.")
    elif member.islnk():
        if os.path.isabs(member.linkname) or not inside(os.path.join(root, member.linkname)):
            raise ValueError(f"Refusing hard link {name!r} -> {member.linkname!r}.")
    elif not (member.isfile() or member.isdir()):
        raise ValueError(f"Refusing archive member {name!r}: not a file or folder.")


def safe_extract_tar(path: Path, target: Path) -> None:
    """Extract a tar archive into ``target`` after checking every member stays inside it."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path) as tf:
        members = tf.getmembers()
        for member in members:
            check_member(member, target)
        # The "data" filter repeats these checks inside tarfile where Python has it.
        if hasattr(tarfile, "data_filter"):
            tf.extractall(target, members=members, filter="data")
        else:  # pragma: no cover - Python without PEP 706
            tf.extractall(target, members=members)


def write_marker(root: Path, md5: str) -> None:
    """Write the marker that makes ``root/101_ObjectCategories`` a valid cache (last step)."""
    fd, tmp = tempfile.mkstemp(prefix=".marker-", dir=root)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(md5 + "\n")
    os.replace(tmp, root / MARKER)
