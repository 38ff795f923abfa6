"""Fetch CMD files over HTTP: resumable, retried, size-checked and validated before use.

CMD map files are several GB each and are fetched on a login node, one Snakemake job per file.
Bytes arrive in ``<dest>.part`` beside the destination. That file is deliberately not a declared
Snakemake output, so Snakemake does not delete it when a job fails, and the next attempt asks
the server for the rest with an HTTP ``Range`` request instead of starting over. The file gets
its final name (an atomic ``os.replace`` in the same directory) only after the byte count
matches the size the server announced and the caller's validator has accepted the content, so
a truncated or wrong file never looks like a finished download.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import numpy as np

from astroflow import __version__
from astroflow.maps.cmd import PARAM_NAMES

log = logging.getLogger(__name__)

_MB = 1e6
_UNKNOWN_SIZE_LOG_STEP = 256 * 1024 * 1024
"""Bytes between progress lines when the server does not announce the size."""

HEADER_BYTES = 128
"""Bytes of a .npy file fetched to read its header (numpy pads version-1 headers to 64-byte
multiples; CMD's are 128 bytes)."""

_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


class DownloadError(RuntimeError):
    """A download that cannot succeed as is; the message names the URL, the file and the cause."""


class _TransferError(Exception):
    """An attempt that failed in a way worth retrying (short read, inconsistent range reply)."""


_RETRYABLE = (
    urllib.error.URLError,  # includes HTTPError; permanent HTTP codes are sorted out first
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine, ...
    ConnectionError,
    TimeoutError,
    _TransferError,
)


def cmd_url(base_url: str, filename: str) -> str:
    """URL of a CMD file under ``base_url``, with the file name percent-quoted.

    ``=`` stays literal (CMD names contain ``z=0.00``) so the URL reads like the listing.
    """
    return base_url.rstrip("/") + "/" + urllib.parse.quote(filename, safe="=")


def download_file(
    url: str,
    dest: Path,
    *,
    validate: Callable[[Path], None] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``<dest>.part`` left by an earlier attempt.

    Connection errors, timeouts, short reads and HTTP 5xx/408/429 are retried after
    ``backoff * 2**k`` seconds, k counting the consecutive failed attempts that added no
    bytes: an attempt that made progress before failing does not use up a retry, so a long
    transfer over a flaky link still finishes. After ``retries`` such failures, or at once on
    any other HTTP error (404, 403, ...), a :class:`DownloadError` is raised and the ``.part``
    is kept for the next run. ``timeout`` (s) bounds each connect and each read, not the whole
    transfer. ``validate(part_path)`` signals a bad file by raising ``ValueError``; the
    ``.part`` is then deleted (resuming it would reproduce the same file) and a
    :class:`DownloadError` is raised. Returns ``dest``.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    while True:
        before = _size(part)
        try:
            _fetch(url, part, timeout=timeout, chunk_size=chunk_size)
            break
        except urllib.error.HTTPError as exc:
            if not _retryable_status(exc.code):
                raise DownloadError(
                    f"{url} -> {dest}: HTTP {exc.code} {exc.reason} (not retried)"
                ) from exc
            error: Exception = exc
        except _RETRYABLE as exc:
            error = exc
        if _size(part) > before:
            failures = 0
        failures += 1
        if failures > retries:
            raise DownloadError(
                f"{url} -> {dest}: giving up after {failures} failed attempts without progress; "
                f"last error: {_describe(error)}; {_size(part)} bytes kept in {part.name} "
                "for the next run to resume"
            ) from error
        delay = backoff * 2 ** (failures - 1)
        log.warning("%s: %s; retrying in %.3g s", dest.name, _describe(error), delay)
        time.sleep(delay)

    if validate is not None:
        try:
            validate(part)
        except ValueError as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{url} -> {dest}: downloaded file rejected: {exc}; partial file deleted"
            ) from exc
    os.replace(part, dest)
    log.info("%s: complete, %.1f MB", dest.name, dest.stat().st_size / _MB)
    return dest


def _fetch(url: str, part: Path, *, timeout: float, chunk_size: int) -> None:
    """One HTTP request that appends to (or restarts) ``part`` until the server's size is reached.

    Raises a retryable exception when the attempt ends early or the server's range reply
    does not line up with the bytes on disk.
    """
    offset = _size(part)
    headers = {"User-Agent": f"astroflow/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _handle_unsatisfiable_range(exc, part, offset)
            return
        raise

    with response:
        if response.status == 206:
            content_range = response.headers.get("Content-Range")
            start, total = _parse_content_range(content_range)
            if start != offset:
                part.unlink()
                raise _TransferError(
                    f"asked for bytes from {offset}, server answered Content-Range "
                    f"{content_range!r}; partial file discarded"
                )
            mode = "ab"
        else:
            if offset:
                log.info("%s: server ignored the Range request, restarting from 0", part.name)
            offset, mode, total = 0, "wb", None
        if total is None and response.headers.get("Content-Length") is not None:
            total = offset + int(response.headers["Content-Length"])

        log.info(
            "%s: GET %s (%s, starting at %.1f MB)",
            part.name,
            url,
            "size unknown" if total is None else f"{total / _MB:.1f} MB",
            offset / _MB,
        )
        with open(part, mode) as out:
            received = _stream(response, out, offset, total, chunk_size, part.name)
            out.flush()
            # The rename that follows must not publish data still in the page cache only.
            os.fsync(out.fileno())

    if total is not None and received != total:
        raise _TransferError(
            f"connection ended after {received} of {total} bytes announced by the server"
        )


def _stream(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    offset: int,
    total: int | None,
    chunk_size: int,
    name: str,
) -> int:
    """Copy the body to ``out`` logging about every 10 %; return the bytes now on disk."""
    step = max(total // 10, 1) if total else _UNKNOWN_SIZE_LOG_STEP
    next_log = (offset // step + 1) * step
    done = offset
    t0 = time.monotonic()
    # read1 returns whatever has arrived (up to chunk_size) instead of waiting for a full
    # chunk, so a stall that ends in a timeout loses no received bytes.
    while chunk := response.read1(chunk_size):
        out.write(chunk)
        done += len(chunk)
        if done >= next_log or done == total:
            rate = (done - offset) / _MB / max(time.monotonic() - t0, 1e-9)
            if total:
                log.info(
                    "%s: %.1f / %.1f MB (%3.0f%%), %.1f MB/s",
                    name,
                    done / _MB,
                    total / _MB,
                    100 * done / total,
                    rate,
                )
            else:
                log.info("%s: %.1f MB, %.1f MB/s", name, done / _MB, rate)
            next_log = (done // step + 1) * step
    return done


def _handle_unsatisfiable_range(exc: urllib.error.HTTPError, part: Path, offset: int) -> None:
    """A 416 to ``bytes=offset-`` means the part is already whole (offset == size) or too big.

    This is the job that died after the last byte but before the rename: it just goes on to
    validation. A part larger than the server's file is discarded and retried from zero.
    """
    _, total = _parse_content_range(exc.headers.get("Content-Range"))
    exc.close()
    if total == offset:
        log.info("%s: already complete (%.1f MB)", part.name, offset / _MB)
        return
    part.unlink()
    raise _TransferError(
        f"partial file holds {offset} bytes but the server reports "
        f"{'an unknown size' if total is None else f'{total} bytes'}; partial file discarded"
    )


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, complete size) from ``bytes a-b/size`` or ``bytes */size``.

    Each is None when the header is missing, malformed or says ``*``; callers then treat
    the part on disk as unverifiable and start over.
    """
    match = _CONTENT_RANGE.fullmatch(value.strip()) if value else None
    if match is None:
        return None, None
    start, total = match.groups()
    return (
        None if start is None else int(start),
        None if total == "*" else int(total),
    )


def _retryable_status(code: int) -> bool:
    """Server-side trouble (5xx), request timeout and rate limiting may pass; 404/403 will not."""
    return code >= 500 or code in (408, 429)


def _describe(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error.reason).__name__}: {error.reason}"
    return f"{type(error).__name__}: {error}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def npy_validator(
    expected_shape: Sequence[int], expected_dtype: str = "<f4", keys: str = ""
) -> Callable[[Path], None]:
    """Validator checking a .npy file's shape, dtype and byte count from its header alone.

    Reading only the header keeps validation instant on multi-GB files; comparing the file
    size with header + shape * itemsize catches truncation that a header cannot show.
    Raises ``ValueError`` naming the file and the mismatch; ``keys`` (the config keys the
    expected shape comes from) is appended to a shape mismatch.
    """
    shape = tuple(int(n) for n in expected_shape)
    dtype = np.dtype(expected_dtype)

    def validate(path: Path) -> None:
        path = Path(path)
        with open(path, "rb") as fh:
            data_offset = check_npy_header(fh, path.name, shape, dtype, keys)
        expected_size = data_offset + math.prod(shape) * dtype.itemsize
        size = path.stat().st_size
        if size != expected_size:
            raise ValueError(
                f"{path.name}: {size} bytes, but header {shape} {dtype.str} implies "
                f"{expected_size} bytes ({'truncated' if size < expected_size else 'extra data'})"
            )

    return validate


def read_npy_header(fh: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset from the .npy header at the start of ``fh``.

    Raises ``ValueError`` naming ``name`` (never numpy's own advice, which for a file that is
    no .npy at all is about pickles).
    """
    start = fh.read(6)
    if start != b"\x93NUMPY":
        raise ValueError(
            f"{name}: not a .npy file (it starts with {start!r}: an HTML error page or another "
            "file saved under this name?); check the URL or the file"
        )
    fh.seek(0)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as exc:
        raise ValueError(f"{name}: not a readable .npy header ({exc})") from None
    shape, _, dtype = header
    return tuple(int(n) for n in shape), dtype, fh.tell()


def check_npy_header(
    fh: BinaryIO, name: str, shape: tuple[int, ...], dtype: np.dtype, keys: str = ""
) -> int:
    """Check the .npy header at the start of ``fh`` against ``shape`` and ``dtype``; return
    the offset of the data. Raises ``ValueError`` naming ``name`` and ``keys``."""
    got_shape, got_dtype, offset = read_npy_header(fh, name)
    if got_shape != shape:
        hint = f"; {keys}" if keys else ""
        raise ValueError(f"{name}: shape {got_shape}, expected {shape}{hint}")
    if got_dtype != dtype:
        raise ValueError(f"{name}: dtype {got_dtype.str}, expected {dtype.str}")
    return offset


def check_remote_npy(
    url: str,
    shape: Sequence[int],
    dtype: str = "<f4",
    keys: str = "",
    *,
    timeout: float = 60.0,
) -> None:
    """Check the header of the .npy file at ``url`` (its first :data:`HEADER_BYTES`, asked
    for with a Range request) before the whole file is fetched: a CMD map file is GBs, and
    one of another shape would be fetched in full, then thrown away, at every retry.

    A mismatch is a :class:`DownloadError` naming the URL and ``keys``; a network failure is
    only logged (the full download retries, and its validator checks the header again).
    """
    headers = {
        "User-Agent": f"astroflow/{__version__}",
        "Accept-Encoding": "identity",
        "Range": f"bytes=0-{HEADER_BYTES - 1}",
    }
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as response:
            start = response.read(HEADER_BYTES)  # a server ignoring Range: read no further
    except urllib.error.HTTPError as exc:
        if not _retryable_status(exc.code):
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason} (not retried)") from exc
        log.warning("%s: header check skipped (%s)", url, _describe(exc))
        return
    except _RETRYABLE as exc:
        log.warning("%s: header check skipped (%s)", url, _describe(exc))
        return
    try:
        check_npy_header(BytesIO(start), url, tuple(int(n) for n in shape), np.dtype(dtype), keys)
    except ValueError as exc:
        raise DownloadError(f"{exc}; nothing was downloaded") from None


def params_validator(n_sims: int) -> Callable[[Path], None]:
    """Validator for a CMD parameter table: ``n_sims`` rows x 6 finite numbers (PARAM_NAMES).

    Raises ``ValueError`` naming the file and the mismatch.
    """
    n_cols = len(PARAM_NAMES)

    def validate(path: Path) -> None:
        path = Path(path)
        try:
            table = np.loadtxt(path, dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path.name}: not a numeric table ({exc})") from exc
        if table.shape != (n_sims, n_cols):
            raise ValueError(
                f"{path.name}: table is {table.shape[0]} x {table.shape[1]}, "
                f"expected {n_sims} x {n_cols}"
            )
        bad = np.argwhere(~np.isfinite(table))
        if bad.size:
            row, col = bad[0]
            raise ValueError(
                f"{path.name}: non-finite value {table[row, col]} at row {row}, "
                f"column {PARAM_NAMES[col]}"
            )

    return validate
