r"""The IDX file format of MNIST: a checked reader and an atomic writer.

An IDX file is the header ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 sizes :math:`d_1, \dots, d_{ndim}`, then exactly :math:`\prod_k d_k` items of
the type. The official files are gzip-compressed.
"""

from __future__ import annotations

import errno
import gzip
import io
import math
import os
import stat
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .atomic import atomic_file

__all__ = ["CorruptFileError", "read_idx", "write_idx"]

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
MAX_IDX_DIMS = 16
DEFLATE_MAX_RATIO = 1032  # a deflate code of 2 bits can stand for at most 258 bytes
PLAUSIBLE_RATIO = 64  # image data compress 2-10 times; beyond PLAUSIBLE_FLOOR we allow 64
PLAUSIBLE_FLOOR = 1 << 30  # below 1 GiB any ratio up to deflate's maximum is tried


class CorruptFileError(ValueError):
    """A data file whose header, size, kind or checksum is not what it must be.

    Examples:
        >>> import tempfile; from pathlib import Path; from byhand.data import read_idx
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name, "labels-idx1-ubyte")
        >>> _ = path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 7, 2]))
        >>> read_idx(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.data.CorruptFileError: ...: IDX header says shape (5,) ...; the file holds 2 bytes
        >>> tmp.cleanup()
    """


CorruptFileError.__module__ = "byhand.data"  # its public home


def read_idx(path: str | Path) -> Tensor:
    """Read an IDX file (gzip-compressed if its name ends in ``.gz``) into a tensor.

    Only a regular file is read (a FIFO, a device, a folder or a symlink loop is
    refused without waiting on it). The size is computed in Python integers (no
    overflow) and checked before anything is allocated: against what the file could
    possibly hold (a deflate stream expands at most :math:`1032\\times`) and against
    what it plausibly holds (beyond 1 GiB, at most :math:`64\\times` its compressed
    size); decompression stops one byte past it, so a gzip bomb is refused without
    being inflated. A missing file raises
    :class:`FileNotFoundError`; anything else wrong raises :class:`CorruptFileError`
    naming the file.

    Examples:
        >>> import tempfile; tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name, "labels-idx1-ubyte")
        >>> _ = path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]))
        >>> read_idx(path)
        tensor([7, 2, 1], dtype=torch.uint8)
        >>> read_idx(tmp.name)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        byhand.data.CorruptFileError: ...: not a regular file (a directory)
        >>> tmp.cleanup()
    """
    path = Path(path)
    with _open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        if path.suffix != ".gz":
            return _read_idx_stream(file, path, (size, size))
        try:
            with gzip.GzipFile(fileobj=file) as stream:
                return _read_idx_stream(stream, path, (size, _plausible(size)))
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptFileError(f"{path}: not a readable gzip file ({exc})") from exc


_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _open_regular(path: Path) -> io.BufferedReader:
    """Open ``path`` for reading if it is a regular file; never block on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptFileError(f"{path}: not a regular file (a symlink loop)") from None
        if isinstance(exc, (IsADirectoryError, PermissionError)) and path.is_dir():
            raise CorruptFileError(f"{path}: not a regular file (a directory)") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
        raise CorruptFileError(f"{path}: not a regular file ({kind})")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _plausible(size: int) -> int:
    """The most bytes a gzip file of ``size`` bytes is believed to inflate to."""
    return min(size * DEFLATE_MAX_RATIO, max(size * PLAUSIBLE_RATIO, PLAUSIBLE_FLOOR))


def _read_idx_stream(stream: io.BufferedIOBase, path: Path,
                     limits: tuple[int, int]) -> Tensor:
    """Parse the IDX header from ``stream`` and read the payload it announces, no more.

    ``limits`` is (file size, the most bytes the file is believed to hold once inflated).
    """
    code, shape = _read_header(stream, path)
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    _check_size(path, shape, expected, limits)
    try:
        payload = bytearray(expected)
    except MemoryError:
        raise MemoryError(f"{path}: IDX header says shape {shape}: {expected} bytes, "
                          "more than this machine can allocate") from None
    got = _read_into(stream, payload)
    announced = f"{path}: IDX header says shape {shape} ({expected} bytes of data)"
    if got < expected:
        raise CorruptFileError(f"{announced}; the file holds {got} bytes")
    if stream.read(1):
        raise CorruptFileError(f"{announced}; the file holds more")
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=False))


def _read_header(stream: io.BufferedIOBase, path: Path) -> tuple[int, tuple[int, ...]]:
    """The data type code and the shape that the IDX header announces."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise CorruptFileError(
            f"{path}: not an IDX file; expected a magic number 0x0000TTDD, got {magic.hex()}"
        )
    code, ndim = magic[2], magic[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise CorruptFileError(f"{path}: unknown IDX data type 0x{code:02x}; expected one of {known}")
    if ndim > MAX_IDX_DIMS:
        raise CorruptFileError(f"{path}: IDX header gives {ndim} dimensions; at most {MAX_IDX_DIMS} "
                               "are accepted")
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise CorruptFileError(f"{path}: IDX header promises {ndim} dimensions but is truncated")
    return code, struct.unpack(f">{ndim}I", sizes)


def _check_size(path: Path, shape: tuple[int, ...], expected: int, limits: tuple[int, int]) -> None:
    """Refuse a declared payload that the file cannot, or plausibly does not, hold."""
    size, capacity = limits
    announced = f"{path}: IDX header says shape {shape} ({expected} bytes of data)"
    if capacity == size and expected > size:  # not compressed
        raise CorruptFileError(f"{announced}; a file of {size} bytes cannot hold that many")
    if expected > size * DEFLATE_MAX_RATIO:
        raise CorruptFileError(f"{announced}; a file of {size} bytes cannot hold that many "
                               f"(deflate inflates at most {DEFLATE_MAX_RATIO} times)")
    if expected > capacity:
        raise CorruptFileError(f"{announced}; a gzip file of {size} bytes would inflate "
                               f"{expected // max(size, 1)} times: beyond {PLAUSIBLE_FLOOR} bytes, "
                               f"more than {PLAUSIBLE_RATIO} times is not plausible")
    if math.prod(d for d in shape if d) * 8 > sys.maxsize:  # empty, yet too large for NumPy
        raise CorruptFileError(f"{announced}; no array can have dimensions that large")


def _read_into(stream: io.BufferedIOBase, buffer: bytearray) -> int:
    """Fill ``buffer`` from ``stream`` until it is full or the stream ends; return the count."""
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        count = stream.readinto(view[got:])
        if not count:
            break
        got += count
    return got


def write_idx(path: str | Path, tensor: Tensor) -> None:
    """Write a uint8 or int8 tensor as a gzip-compressed IDX file, atomically.

    Examples:
        >>> import tempfile; tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name, "grid-idx2-ubyte.gz")
        >>> write_idx(path, torch.arange(6, dtype=torch.uint8).reshape(2, 3))
        >>> read_idx(path)
        tensor([[0, 1, 2],
                [3, 4, 5]], dtype=torch.uint8)
        >>> write_idx(path, torch.zeros(3))
        Traceback (most recent call last):
            ...
        TypeError: write_idx: tensor must be uint8 or int8; got torch.float32
        >>> tmp.cleanup()
    """
    array = tensor.detach().cpu().numpy()
    if array.dtype not in _IDX_CODES:
        raise TypeError(f"write_idx: tensor must be uint8 or int8; got {tensor.dtype}")
    if array.ndim > MAX_IDX_DIMS or any(size >= 2**32 for size in array.shape):
        raise ValueError(f"write_idx: IDX holds at most {MAX_IDX_DIMS} dimensions, each below 2**32; "
                         f"got shape {tuple(array.shape)}")
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = gzip.compress(header + np.ascontiguousarray(array).tobytes(), compresslevel=6, mtime=0)
    with atomic_file(Path(path)) as handle:
        handle.write(payload)
