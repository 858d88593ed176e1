"""Download, verification and safe, atomic extraction of the Caltech101 archive.

A tiny archive with the official nesting (``caltech-101.zip`` wrapping
``caltech-101/101_ObjectCategories.tar.gz``) is built in a temporary folder and served from
a ``file://`` URL, so these tests need no network.
"""

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from helpers import download
from helpers.download import (
    FOLDER,
    MARKER,
    ZIP_NAME,
    cache_dir,
    check_member,
    find_data_dir,
    is_complete,
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """Tests decide where the data is; the shared copy and cache variables are ignored."""
    monkeypatch.delenv("CALTECH101_DIR", raising=False)
    monkeypatch.delenv("BOOK_CACHE_DIR", raising=False)


def jpeg_bytes(color=(200, 30, 30)):
    buf = io.BytesIO()
    Image.new("RGB", (12, 8), color).save(buf, "JPEG")
    return buf.getvalue()


def add_bytes(tf, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def build_archive(folder: Path, extra=None):
    """Write ``caltech-101.zip`` into ``folder``; return (file URL, MD5 of the inner tar.gz).

    ``extra`` may add members to the tar (a callable taking the open TarFile).
    """
    inner = folder / "101_ObjectCategories.tar.gz"
    with tarfile.open(inner, "w:gz") as tf:
        for name in (
            "airplanes/image_0001.jpg",
            "airplanes/image_0002.jpg",
            "watch/image_0001.jpg",
        ):
            add_bytes(tf, f"{FOLDER}/{name}", jpeg_bytes())
        if extra is not None:
            extra(tf)
    md5 = hashlib.md5(inner.read_bytes()).hexdigest()
    outer = folder / ZIP_NAME
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "caltech-101/101_ObjectCategories.tar.gz")
        zf.writestr("caltech-101/show_annotation.m", "% not needed\n")
    return outer.as_uri(), md5


def leftovers(cache: Path):
    """Anything in the cache that is not a finished, marked extraction."""
    return sorted(p.name for p in cache.iterdir() if p.name not in (FOLDER, MARKER))


def test_download_verifies_and_extracts(tmp_path):
    url, md5 = build_archive(tmp_path)
    cache = tmp_path / "cache"
    root = find_data_dir(cache=cache, url=url, md5=md5)
    assert root == cache / FOLDER
    assert sorted(p.name for p in root.iterdir()) == ["airplanes", "watch"]
    assert (root / "airplanes" / "image_0002.jpg").read_bytes() == jpeg_bytes()
    assert (cache / MARKER).read_text().strip() == md5
    assert is_complete(cache, md5)
    assert leftovers(cache) == []  # archive removed, no temporary folders


def test_valid_cache_is_reused_without_download(tmp_path):
    url, md5 = build_archive(tmp_path)
    cache = tmp_path / "cache"
    find_data_dir(cache=cache, url=url, md5=md5)
    (tmp_path / ZIP_NAME).unlink()
    assert find_data_dir(cache=cache, url=url, md5=md5, download=False) == cache / FOLDER


def test_wrong_checksum_fails_and_leaves_no_cache(tmp_path):
    url, _ = build_archive(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="Checksum mismatch.*expected 0{32}"):
        find_data_dir(cache=cache, url=url, md5="0" * 32)
    assert not is_complete(cache, "0" * 32)
    assert list(cache.iterdir()) == []  # no folder, no marker, no archive, no temp files


def test_member_escaping_with_dotdot_is_refused(tmp_path):
    url, md5 = build_archive(tmp_path, lambda tf: add_bytes(tf, "../evil.txt", b"x"))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"Refusing archive member '\.\./evil\.txt'"):
        find_data_dir(cache=cache, url=url, md5=md5)
    assert not (tmp_path / "evil.txt").exists()
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert not is_complete(cache, md5)
    assert not (cache / FOLDER).exists()


@pytest.mark.parametrize(
    ("name", "kind", "link"),
    [
        ("/etc/evil", tarfile.REGTYPE, ""),
        ("a/../../evil", tarfile.REGTYPE, ""),
        ("a/link", tarfile.SYMTYPE, "../../outside"),
        ("a/link", tarfile.SYMTYPE, "/etc/passwd"),
        ("a/hard", tarfile.LNKTYPE, "../outside"),
        ("a/dev", tarfile.CHRTYPE, ""),
    ],
)
def test_check_member_refuses_escapes(tmp_path, name, kind, link):
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    with pytest.raises(ValueError, match="Refusing"):
        check_member(member, tmp_path)


def test_check_member_accepts_links_inside(tmp_path):
    member = tarfile.TarInfo("a/b/link")
    member.type = tarfile.SYMTYPE
    member.linkname = "../c.jpg"
    check_member(member, tmp_path)  # a/c.jpg stays inside


def test_unfinished_extraction_is_not_trusted(tmp_path):
    url, md5 = build_archive(tmp_path)
    cache = tmp_path / "cache"
    (cache / FOLDER / "airplanes").mkdir(parents=True)  # as if extraction stopped midway
    assert not is_complete(cache, md5)
    with pytest.raises(FileNotFoundError, match="not in"):
        find_data_dir(cache=cache, url=url, md5=md5, download=False)
    root = find_data_dir(cache=cache, url=url, md5=md5)
    assert len(list((root / "airplanes").iterdir())) == 2


def test_zip_placed_in_cache_by_hand_is_used_offline(tmp_path):
    url, md5 = build_archive(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (tmp_path / ZIP_NAME).rename(cache / ZIP_NAME)
    root = find_data_dir(cache=cache, url="http://127.0.0.1:9/caltech-101.zip", md5=md5)
    assert (root / "watch" / "image_0001.jpg").is_file()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/caltech-101.zip", "file:///nonexistent/caltech-101.zip"]
)
def test_no_network_and_no_copy_explains_how_to_provide_data(tmp_path, url):
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError) as info:
        find_data_dir(cache=cache, url=url)
    message = str(info.value)
    assert "Could not download" in message
    assert url in message
    assert "CALTECH101_DIR=/path/to/101_ObjectCategories" in message
    assert str(cache) in message and "tar -xzf" in message
    assert not is_complete(cache)


def test_caltech101_dir_skips_download(tmp_path, monkeypatch):
    folder = tmp_path / "mine" / FOLDER
    folder.mkdir(parents=True)
    monkeypatch.setenv("CALTECH101_DIR", str(folder))
    assert find_data_dir(cache=tmp_path / "cache", url="http://127.0.0.1:9/x.zip") == folder
    assert not (tmp_path / "cache").exists()


def test_caltech101_dir_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CALTECH101_DIR", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"\$CALTECH101_DIR points at .*not a folder"):
        find_data_dir(cache=tmp_path / "cache")


def test_cache_dir_precedence(tmp_path, monkeypatch):
    assert cache_dir() == Path.home() / ".cache" / "wrong-labels-book"
    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_official_archive_constants():
    assert download.CALTECH101_URL.endswith("/records/mzrjq-6wc02/files/caltech-101.zip")
    assert download.CALTECH101_MD5 == "b224c7392d521a49829488ab0f1120d9"
    assert download.INNER_ARCHIVE == "caltech-101/101_ObjectCategories.tar.gz"
