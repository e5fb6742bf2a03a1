"""Checked downloads: a file is kept only if some mirror serves it with the right MD5.

Any failure of a mirror (refused or dropped connection, a body cut short, a bad
status line, an HTTP error, a timeout, too many bytes, another checksum) moves on to
the next; the body streams into an atomic ``.part`` file (:mod:`byhand.data.atomic`)
that replaces the target only once its MD5 is verified.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from .atomic import atomic_file

__all__ = ["DownloadError", "download"]

MAX_DOWNLOAD_BYTES = 64 << 20  # the largest MNIST file is 9.9 MB
_CHUNK_BYTES = 1 << 20
# urllib's errors are OSErrors; http.client's (IncompleteRead, BadStatusLine) are not;
# a malformed URL raises ValueError.
_TRANSFER_ERRORS = (OSError, http.client.HTTPException, ValueError)


class DownloadError(OSError):
    """No mirror served a file with the right checksum; the message lists every attempt.

    Examples:
        >>> import tempfile; from pathlib import Path; from byhand.data import download
        >>> tmp = tempfile.TemporaryDirectory(); mirror = Path(tmp.name)
        >>> _ = (mirror / "a.txt").write_bytes(b"byhand")
        >>> download("a.txt", "0" * 32, [mirror.as_uri() + "/"], mirror)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.data.DownloadError: could not download a.txt; 1 mirror(s) tried:
          file://.../a.txt: MD5 385122f2778b265180f1fe21ed272406 is not the expected 000...000
        Download it by hand, check that its MD5 is 000...000, and put it in .../
        >>> tmp.cleanup()
    """


DownloadError.__module__ = "byhand.data"  # its public home


class _MirrorError(Exception):
    """One mirror failed; the message says why."""


def download(name: str, md5: str, mirrors: Sequence[str], folder: Path, timeout: float = 30,
             max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Fetch ``name`` from the first mirror that serves it with the right MD5; keep it in ``folder``.

    Any failure of a transfer (refused or dropped connection, a body cut short, a bad
    status line, an HTTP error, ``timeout`` seconds without data, more than
    ``max_bytes`` bytes, another checksum) moves on to the next mirror. The body is
    streamed into a temporary file that replaces ``folder/name`` only once its MD5
    is verified. Raises :class:`DownloadError` listing every mirror and its failure
    when none succeeds; errors of the local disk are raised as they are.

    Examples:
        >>> import tempfile; tmp = tempfile.TemporaryDirectory(); mirror = Path(tmp.name)
        >>> _ = (mirror / "a.txt").write_bytes(b"byhand"); (mirror / "copy").mkdir()
        >>> md5 = hashlib.md5(b"byhand", usedforsecurity=False).hexdigest()
        >>> download("a.txt", md5, [mirror.as_uri() + "/"], mirror / "copy").read_bytes()
        b'byhand'
        >>> tmp.cleanup()
    """
    failures = []
    for mirror in mirrors:
        url = mirror + name
        try:
            with atomic_file(folder / name) as handle:
                _fetch_into(handle, url, md5, timeout, max_bytes)
        except _MirrorError as exc:
            failures.append(f"{url}: {exc}")
            continue
        return folder / name
    raise DownloadError(
        f"could not download {name}; {len(failures)} mirror(s) tried:\n  " + "\n  ".join(failures)
        + f"\nDownload it by hand, check that its MD5 is {md5}, and put it in {folder}/"
    )


def _fetch_into(handle: BinaryIO, url: str, md5: str, timeout: float, max_bytes: int) -> None:
    """Write the body of ``url`` to ``handle``; raise :class:`_MirrorError` unless its MD5 is ``md5``."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in _chunks(url, timeout, max_bytes):
        digest.update(chunk)
        handle.write(chunk)
    if digest.hexdigest() != md5:
        raise _MirrorError(f"MD5 {digest.hexdigest()} is not the expected {md5}")


def _chunks(url: str, timeout: float, max_bytes: int) -> Iterator[bytes]:
    """The body of ``url`` piece by piece; every failure of the transfer becomes a :class:`_MirrorError`."""
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(_CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise _MirrorError(f"sent more than {max_bytes} bytes")
                yield chunk
            # read(n) returns b"" when the connection drops early; read() would raise IncompleteRead
            announced = response.headers.get("Content-Length")
            if announced is not None and int(announced) != received:
                raise _MirrorError(f"the body ended after {received} of {announced} bytes")
    except _TRANSFER_ERRORS as exc:
        raise _MirrorError(" ".join(f"{type(exc).__name__}: {exc}".split())) from exc
