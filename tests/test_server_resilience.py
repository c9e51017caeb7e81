"""Clients that misbehave, a flood of tiny requests, and a graceful stop, over real server
processes (segmenter u2netp, loopback only, every wait bounded).

What each test proves:
* a client that disconnects mid-upload or before reading its cutout costs the server
  nothing that lasts: its place is given back (/healthz running = waiting = 0), the
  server answers the next request and logs no traceback;
* an upload trickling a byte at a time is cut off with 408 after --upload-timeout;
* hundreds of tiny requests at once all get an answer (never a 5xx or a reset), and a
  real cutout sent in the middle of the flood still succeeds;
* SIGTERM lets the cutout in flight finish (its client gets the PNG), refuses new
  connections, and the process exits 0.
"""

from __future__ import annotations

import io
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import disc_image, photo_like, start_server  # noqa: E402

HANG_BOUND = 60  # seconds; generous: only a hang exceeds it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = start_server(tmp_path_factory.mktemp("resilience") / "server.log", "--max-concurrency", "1",
                        "--queue-size", "4", "--upload-timeout", "2")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def small_png() -> bytes:
    return disc_image(160, 120, "PNG")


def wait_idle(server, bound: float = HANG_BOUND) -> dict:
    """/healthz once nothing is running or waiting (a place that is never given back fails here)."""
    deadline = time.monotonic() + bound
    body: dict = {}
    while time.monotonic() < deadline:
        body = httpx.get(f"{server.url}/healthz", timeout=10).json()
        if body["running"] == 0 and body["waiting"] == 0:
            return body
        time.sleep(0.05)
    raise AssertionError(f"the server still holds places: {body}")


def cutout_ok(server, image: bytes) -> None:
    r = httpx.post(f"{server.url}/v1/remove", files={"image_file": ("a.png", image)}, timeout=HANG_BOUND)
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).mode == "RGBA"


def multipart_head(port: int, length: int, boundary: str = "XyZ") -> bytes:
    return (f"POST /v1/remove HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n").encode()


def multipart_body(data: bytes, boundary: str = "XyZ") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image_file\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()


def test_clients_that_disconnect_mid_upload_give_their_place_back(server, small_png: bytes) -> None:
    big = disc_image(1200, 900, "PNG", compress_level=0)
    body = multipart_body(big)
    for k in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(multipart_head(server.port, len(body)))
            s.sendall(body[: len(body) * (k + 1) // 25])  # part of the upload, then gone
    wait_idle(server)
    cutout_ok(server, small_png)
    assert "Traceback" not in server.log()


def test_clients_that_disconnect_before_reading_the_cutout(server, small_png: bytes) -> None:
    photo = io.BytesIO()
    photo_like(800, 600).save(photo, "JPEG", quality=90)
    body = multipart_body(photo.getvalue())
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(multipart_head(server.port, len(body)) + body)
            s.shutdown(socket.SHUT_WR)  # everything sent; leave before the answer
    # One that reads the first bytes of the answer and then drops the connection.
    with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_BOUND) as s:
        s.sendall(multipart_head(server.port, len(body)) + body)
        assert s.recv(64).startswith(b"HTTP/1.1 ")
    wait_idle(server)
    cutout_ok(server, small_png)
    assert "Traceback" not in server.log()


def test_an_upload_at_a_byte_a_time_gets_408(server) -> None:
    body = multipart_body(disc_image(64, 48, "PNG"))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_BOUND) as s:
        s.sendall(multipart_head(server.port, len(body)))
        reply = b""
        s.settimeout(0.25)
        for byte in body:  # a byte every 0.25 s: the whole upload would take minutes
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break  # the server answered and closed
            try:
                chunk = s.recv(65536)
                reply += chunk
                if not chunk or reply.rstrip().endswith(b"}}"):
                    break
            except socket.timeout:
                pass
            if time.monotonic() - started > HANG_BOUND:
                break
        s.settimeout(10)
        try:
            while not reply.rstrip().endswith(b"}}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"upload_timeout"' in reply
    wait_idle(server)


def test_a_flood_of_tiny_requests_all_get_answers_and_a_cutout_still_succeeds(server, small_png: bytes) -> None:
    kinds = [
        lambda c: c.post("/v1/remove", content=b""),  # empty
        lambda c: c.post("/v1/remove", content=b"\xff"),  # one byte
        lambda c: c.post("/v1/remove", files={"image_file": ("x", b"GIF89a")}),
        lambda c: c.get("/healthz"),
        lambda c: c.get("/no/such/page"),
    ]
    statuses: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=HANG_BOUND) as c:
                r = kinds[i % len(kinds)](c)
            with lock:
                statuses.append(r.status_code)
        except httpx.HTTPError as exc:
            with lock:
                failures.append(f"{i}: {exc.__class__.__name__}")

    result: dict = {}

    def real_cutout() -> None:
        time.sleep(0.2)
        r = httpx.post(f"{server.url}/v1/remove", files={"image_file": ("a.png", small_png)}, timeout=HANG_BOUND)
        result["status"] = r.status_code

    helper = threading.Thread(target=real_cutout)
    helper.start()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(400)))
    helper.join(HANG_BOUND)
    assert not failures, failures[:10]
    assert len(statuses) == 400
    assert all(s < 500 or s == 503 for s in statuses), sorted(set(statuses))
    assert result.get("status") == 200
    wait_idle(server)


def test_sigterm_finishes_the_cutout_in_flight_refuses_new_ones_and_exits_0(tmp_path: Path) -> None:
    proc = start_server(tmp_path / "server.log", "--max-concurrency", "1")
    try:
        photo = io.BytesIO()
        photo_like(2400, 1800).save(photo, "JPEG", quality=90)
        answer: dict = {}

        def slow_cutout() -> None:
            try:
                r = httpx.post(f"{proc.url}/v1/remove", files={"image_file": ("a.jpg", photo.getvalue())}, timeout=HANG_BOUND)
                answer["status"] = r.status_code
                answer["mode"] = Image.open(io.BytesIO(r.content)).mode if r.status_code == 200 else None
            except httpx.HTTPError as exc:
                answer["error"] = repr(exc)

        t = threading.Thread(target=slow_cutout)
        t.start()
        deadline = time.monotonic() + HANG_BOUND
        while httpx.get(f"{proc.url}/healthz", timeout=10).json()["running"] == 0:
            assert time.monotonic() < deadline, "the cutout never started"
            time.sleep(0.02)
        proc.proc.send_signal(signal.SIGTERM)
        # New connections are refused (the listening socket is closed) while the cutout finishes.
        refused = False
        deadline = time.monotonic() + 10
        while not refused and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", proc.port), timeout=2).close()
                time.sleep(0.01)
            except OSError:
                refused = True
        in_flight_when_refused = "status" not in answer and "error" not in answer
        t.join(HANG_BOUND)
        assert answer.get("status") == 200 and answer.get("mode") == "RGBA", answer
        assert refused, "the server still accepted connections 10 s after SIGTERM"
        assert in_flight_when_refused, "the listening socket closed only after the cutout had finished"
        assert proc.proc.wait(HANG_BOUND) == 0
        log = proc.log()
        assert "stopped by SIGTERM" in log
        assert "Traceback" not in log
    finally:
        proc.stop()
