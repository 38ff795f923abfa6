"""Downloads against a real HTTP server on 127.0.0.1 that can cut, stall, lie and fail on demand."""

from __future__ import annotations

import io
import logging
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from astroflow.maps import download
from astroflow.maps.cmd import LH_RANGES, MAPS_PER_SIM, PARAM_NAMES, map_filename, params_filename
from astroflow.maps.download import (
    HEADER_BYTES,
    DownloadError,
    check_remote_npy,
    cmd_url,
    download_file,
    npy_validator,
    params_validator,
)

SUITE, SET = "IllustrisTNG", "LH"
N_SIMS, N = 2, 16
SHAPE = (MAPS_PER_SIM * N_SIMS, N, N)
MAPS_NAME = map_filename("Mgas", SUITE, SET)
PARAMS_NAME = params_filename(SUITE, SET)
BACKOFF = 0.01
CHUNK = 1024


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _maps_bytes() -> bytes:
    rng = np.random.default_rng(0)
    return _npy_bytes(rng.lognormal(23.0, 1.0, SHAPE).astype(np.float32))


def _params_bytes() -> bytes:
    rng = np.random.default_rng(1)
    lo, hi = np.array([LH_RANGES[p] for p in PARAM_NAMES]).T
    buf = io.StringIO()
    np.savetxt(buf, lo + (hi - lo) * rng.random((N_SIMS, len(PARAM_NAMES))))
    return buf.getvalue().encode()


MAPS = _maps_bytes()
PARAMS = _params_bytes()


@dataclass
class ServerState:
    """What the server holds, how it misbehaves next, and what it was asked."""

    base_url: str
    files: dict[str, bytes]
    fail_statuses: list[int] = field(default_factory=list)  # answered first, one per request
    cut_after: int | None = None  # body bytes sent before dropping the connection, once
    stall_after: int | None = None  # body bytes sent before going silent, once
    ignore_range: bool = False
    extra_length: int = 0  # the server claims files are this many bytes longer than they are
    omit_length: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (name, Range)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        name = urllib.parse.unquote(self.path.removeprefix("/cmd/"))
        range_header = self.headers.get("Range")
        state.requests.append((name, range_header))
        if state.fail_statuses:
            self.send_error(state.fail_statuses.pop(0))
            return
        if name not in state.files:
            self.send_error(404)
            return
        body = state.files[name]
        claimed = len(body) + state.extra_length
        start = 0
        if range_header and not state.ignore_range:
            first, last = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header).groups()
            start = int(first)
            end = min(int(last), claimed - 1) if last else claimed - 1
            if start >= claimed:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{claimed}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{claimed}")
        else:
            self.send_response(200)
            end = claimed - 1
        if not state.omit_length:
            self.send_header("Content-Length", str(end + 1 - start))
        self.end_headers()
        payload = body[start : end + 1]
        if state.cut_after is not None:
            payload, state.cut_after = payload[: state.cut_after], None
        elif state.stall_after is not None:
            self.wfile.write(payload[: state.stall_after])
            self.wfile.flush()
            state.stall_after = None
            state.release.wait(5.0)
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    httpd.state = ServerState(
        base_url=f"http://{host}:{port}/cmd", files={MAPS_NAME: MAPS, PARAMS_NAME: PARAMS}
    )
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield httpd.state
    httpd.state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def sleeps(monkeypatch):
    """Record backoff delays instead of sleeping."""
    calls: list[float] = []
    monkeypatch.setattr(download.time, "sleep", calls.append)
    return calls


def _get(state: ServerState, dest: Path, name: str = MAPS_NAME, **kwargs) -> Path:
    kwargs.setdefault("validate", npy_validator(SHAPE))
    kwargs.setdefault("backoff", BACKOFF)
    kwargs.setdefault("chunk_size", CHUNK)
    kwargs.setdefault("timeout", 5.0)
    return download_file(cmd_url(state.base_url, name), dest, **kwargs)


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def test_cmd_url_joins_and_quotes():
    assert (
        cmd_url("https://host/CMD/2D_maps/data/", MAPS_NAME)
        == "https://host/CMD/2D_maps/data/Maps_Mgas_IllustrisTNG_LH_z=0.00.npy"
    )
    assert cmd_url("https://host/data", "a b.txt") == "https://host/data/a%20b.txt"


def test_downloads_validated_files_byte_identical(server, sleeps, tmp_path):
    maps = _get(server, tmp_path / "raw" / MAPS_NAME)
    params = _get(server, tmp_path / "raw" / PARAMS_NAME, PARAMS_NAME, validate=params_validator(2))
    assert maps.read_bytes() == MAPS
    assert params.read_bytes() == PARAMS
    assert np.load(maps, mmap_mode="r").shape == SHAPE
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([MAPS_NAME, PARAMS_NAME])
    assert server.requests == [(MAPS_NAME, None), (PARAMS_NAME, None)]
    assert sleeps == []


def test_cut_connection_resumes_with_range(server, sleeps, tmp_path):
    server.cut_after = 10_000
    dest = _get(server, tmp_path / MAPS_NAME)
    assert dest.read_bytes() == MAPS
    assert server.requests == [(MAPS_NAME, None), (MAPS_NAME, "bytes=10000-")]
    assert sleeps == [BACKOFF]
    assert not _part(dest).exists()


def test_failed_job_keeps_part_and_next_run_resumes(server, sleeps, tmp_path):
    # retries=0: the first run fails like a Snakemake job would; .part is not a declared output.
    server.cut_after = 10_000
    dest = tmp_path / MAPS_NAME
    url = cmd_url(server.base_url, MAPS_NAME)
    with pytest.raises(DownloadError) as err:
        _get(server, dest, retries=0)
    assert url in str(err.value) and str(dest) in str(err.value)
    assert "10000 of" in str(err.value)
    assert not dest.exists()
    assert _part(dest).read_bytes() == MAPS[:10_000]

    _get(server, dest, retries=0)
    assert dest.read_bytes() == MAPS
    assert server.requests[-1] == (MAPS_NAME, "bytes=10000-")


def test_server_ignoring_range_restarts_from_zero(server, sleeps, tmp_path):
    dest = tmp_path / MAPS_NAME
    _part(dest).write_bytes(b"\xff" * 5000)  # appending the 200 body to this would corrupt it
    server.ignore_range = True
    _get(server, dest)
    assert dest.read_bytes() == MAPS
    assert server.requests == [(MAPS_NAME, "bytes=5000-")]


def test_complete_part_is_validated_and_renamed_without_transfer(server, sleeps, tmp_path):
    # The job that died between the last byte and the rename: the server answers 416.
    dest = tmp_path / MAPS_NAME
    _part(dest).write_bytes(MAPS)
    _get(server, dest)
    assert dest.read_bytes() == MAPS
    assert server.requests == [(MAPS_NAME, f"bytes={len(MAPS)}-")]
    assert sleeps == []


def test_part_longer_than_server_file_is_discarded(server, sleeps, tmp_path):
    dest = tmp_path / MAPS_NAME
    _part(dest).write_bytes(MAPS + b"junk")
    _get(server, dest)
    assert dest.read_bytes() == MAPS
    assert server.requests == [(MAPS_NAME, f"bytes={len(MAPS) + 4}-"), (MAPS_NAME, None)]


def test_truncated_npy_is_rejected_and_nothing_left(server, sleeps, tmp_path):
    # The server is consistent about the (short) size, so only the header check can tell.
    server.files[MAPS_NAME] = MAPS[:-1000]
    dest = tmp_path / MAPS_NAME
    with pytest.raises(DownloadError, match=r"truncated") as err:
        _get(server, dest)
    assert cmd_url(server.base_url, MAPS_NAME) in str(err.value)
    assert str(dest) in str(err.value)
    assert f"{len(MAPS) - 1000} bytes" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_wrong_shape_npy_is_rejected_and_nothing_left(server, sleeps, tmp_path):
    server.files[MAPS_NAME] = _npy_bytes(np.ones((SHAPE[0], 8, 8), np.float32))
    dest = tmp_path / MAPS_NAME
    with pytest.raises(DownloadError, match=r"shape \(30, 8, 8\), expected \(30, 16, 16\)"):
        _get(server, dest)
    assert list(tmp_path.iterdir()) == []


def test_server_lying_about_size_fails_after_retries(server, sleeps, tmp_path):
    server.extra_length = 500
    dest = tmp_path / MAPS_NAME
    with pytest.raises(DownloadError, match=f"{len(MAPS)} of {len(MAPS) + 500} bytes") as err:
        _get(server, dest, retries=2)
    assert str(dest) in str(err.value)
    assert not dest.exists()
    assert _part(dest).read_bytes() == MAPS  # kept: a later run may still complete it
    # The first attempt made progress, the next two did not; the third failure gives up.
    assert len(server.requests) == 3
    assert sleeps == [BACKOFF, 2 * BACKOFF]


@pytest.mark.parametrize("status", [404, 403])
def test_client_error_fails_immediately(server, sleeps, tmp_path, status):
    server.fail_statuses = [status] * 5
    dest = tmp_path / MAPS_NAME
    with pytest.raises(DownloadError, match=f"HTTP {status}") as err:
        _get(server, dest)
    assert cmd_url(server.base_url, MAPS_NAME) in str(err.value)
    assert str(dest) in str(err.value)
    assert len(server.requests) == 1
    assert sleeps == []
    assert list(tmp_path.iterdir()) == []


def test_transient_503_is_retried_with_exponential_backoff(server, sleeps, tmp_path):
    server.fail_statuses = [503, 503]
    dest = _get(server, tmp_path / MAPS_NAME)
    assert dest.read_bytes() == MAPS
    assert len(server.requests) == 3
    assert sleeps == [BACKOFF, 2 * BACKOFF]


def test_persistent_503_gives_up_after_retries(server, sleeps, tmp_path):
    server.fail_statuses = [503] * 10
    with pytest.raises(DownloadError, match=r"3 failed attempts.*HTTP 503"):
        _get(server, tmp_path / MAPS_NAME, retries=2)
    assert len(server.requests) == 3
    assert sleeps == [BACKOFF, 2 * BACKOFF]
    assert not (tmp_path / MAPS_NAME).exists()


def test_stalled_transfer_times_out_and_resumes(server, sleeps, tmp_path):
    server.stall_after = 10_000
    dest = _get(server, tmp_path / MAPS_NAME, timeout=0.3)
    assert dest.read_bytes() == MAPS
    assert server.requests == [(MAPS_NAME, None), (MAPS_NAME, "bytes=10000-")]


def test_unknown_size_relies_on_validator(server, sleeps, tmp_path):
    # Without Content-Length the body runs to EOF; a cut is then only visible to the validator.
    server.omit_length = True
    dest = _get(server, tmp_path / MAPS_NAME)
    assert dest.read_bytes() == MAPS
    server.cut_after = 10_000
    with pytest.raises(DownloadError, match="truncated"):
        _get(server, tmp_path / "again.npy", MAPS_NAME)
    assert not (tmp_path / "again.npy").exists()


def test_progress_logged_about_every_tenth(server, sleeps, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="astroflow.maps.download")
    _get(server, tmp_path / MAPS_NAME, chunk_size=256)
    progress = [r.getMessage() for r in caplog.records if "MB/s" in r.getMessage()]
    assert 9 <= len(progress) <= 11
    assert "(100%)" in progress[-1]
    percents = [int(re.search(r"\(\s*(\d+)%\)", line).group(1)) for line in progress]
    assert percents == sorted(percents)


def _write_npy(path: Path, array: np.ndarray) -> Path:
    path.write_bytes(_npy_bytes(array))
    return path


def test_npy_validator_checks_dtype_byte_order_and_size(tmp_path):
    check = npy_validator((4, 3))
    check(_write_npy(tmp_path / "ok.npy", np.zeros((4, 3), "<f4")))
    with pytest.raises(ValueError, match=r"f64.npy: dtype <f8, expected <f4"):
        check(_write_npy(tmp_path / "f64.npy", np.zeros((4, 3), "<f8")))
    with pytest.raises(ValueError, match=r"dtype >f4"):
        check(_write_npy(tmp_path / "big.npy", np.zeros((4, 3), ">f4")))
    extra = tmp_path / "extra.npy"
    extra.write_bytes(_npy_bytes(np.zeros((4, 3), "<f4")) + b"\0" * 4)
    with pytest.raises(ValueError, match=r"extra data"):
        check(extra)
    html = tmp_path / "error.npy"
    html.write_bytes(b"<html>Service Unavailable</html>")
    with pytest.raises(ValueError, match=r"error.npy: not a .npy file") as error:
        check(html)
    assert "pickle" not in str(error.value)


def test_params_validator_checks_rows_columns_and_finiteness(tmp_path):
    check = params_validator(3)
    table = np.full((3, 6), 0.5)
    path = tmp_path / "params.txt"
    np.savetxt(path, table)
    check(path)
    np.savetxt(path, table[:2])
    with pytest.raises(ValueError, match=r"params.txt: table is 2 x 6, expected 3 x 6"):
        check(path)
    np.savetxt(path, table[:, :5])
    with pytest.raises(ValueError, match=r"3 x 5, expected 3 x 6"):
        check(path)
    table[1, 1] = np.nan
    np.savetxt(path, table)
    with pytest.raises(ValueError, match=r"non-finite value nan at row 1, column sigma_8"):
        check(path)
    path.write_text("<html>Not Found</html>\n")
    with pytest.raises(ValueError, match=r"not a numeric table"):
        check(path)


KEYS = "expected from data.n_sims and data.map_size"


def test_header_of_another_shape_stops_before_the_download(server, tmp_path):
    server.files[MAPS_NAME] = _npy_bytes(np.ones((SHAPE[0], 8, 8), np.float32))
    url = cmd_url(server.base_url, MAPS_NAME)
    with pytest.raises(DownloadError, match=r"shape .*8, 8\), expected .*data.n_sims") as error:
        check_remote_npy(url, SHAPE, "<f4", KEYS, timeout=5)
    assert "nothing was downloaded" in str(error.value)
    assert server.requests == [(MAPS_NAME, f"bytes=0-{HEADER_BYTES - 1}")]


@pytest.mark.parametrize("ignore_range", [False, True])
def test_header_of_the_right_shape_passes(server, tmp_path, ignore_range):
    server.ignore_range = ignore_range
    check_remote_npy(cmd_url(server.base_url, MAPS_NAME), SHAPE, "<f4", KEYS, timeout=5)


def test_an_html_page_under_the_npy_name_is_named_without_pickle_advice(server, tmp_path):
    server.files[MAPS_NAME] = b"<!DOCTYPE html><html><body>Login required</body></html>"
    with pytest.raises(DownloadError, match="not a .npy file") as error:
        check_remote_npy(cmd_url(server.base_url, MAPS_NAME), SHAPE, timeout=5)
    assert "pickle" not in str(error.value)
