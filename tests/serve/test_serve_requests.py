"""Bad and hostile requests to `cnbsim serve`: each gets one JSON answer with a `detail`, and starts nothing."""

from __future__ import annotations

import select
import socket
import sys
from collections.abc import Iterator

import pytest
from servekit import Client, parse_response, receive_all, serving

from cnbsim.serve import HANDLERS, Api, Limits, json_depth

HEAD = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
SMALL = Limits(max_body=1000, read_timeout=0.5, request_deadline=2.0, max_json_depth=100)


@pytest.fixture
def platform(output) -> Iterator[Client]:
    """A server whose `GET /` lists the jobs, so a test sees that nothing was started."""
    with serving(output, api=Api.PLATFORM, limits=SMALL) as c:
        yield c


def post(client: Client, headers: bytes, body: bytes = b"", **kwargs) -> tuple[int | None, dict]:
    return client.raw(HEAD + headers + b"\r\n" + body, **kwargs)


def assert_nothing_started(client: Client) -> None:
    assert client.call("GET", "/") == (200, [])


@pytest.mark.parametrize("headers, status, words", [
    (b"Content-Length: -5\r\n", 400, "Content-Length header must be a number of bytes, not '-5'"),
    (b"Content-Length: 12abc\r\n", 400, "not '12abc'"),
    (b"Content-Length: 2\r\nContent-Length: 3\r\n", 400, "conflicting Content-Length headers"),
    (b"", 411, "a POST needs a Content-Length header"),
    (b"Transfer-Encoding: chunked\r\n", 411, "Transfer-Encoding is not supported"),
    (b"Content-Length: 1000000000\r\n", 413, "1000000000 bytes is over the limit of 1000 bytes"),
], ids=["negative", "not-a-number", "conflicting", "missing", "chunked", "huge-with-short-body"])
def test_bad_content_length_gets_an_answer_at_once_and_starts_nothing(platform, headers, status, words):
    answer = post(platform, headers, b'{"data": {}}', read_timeout=10)   # read_timeout: the answer does not wait
    assert answer[0] == status and words in answer[1]["detail"], answer
    assert_nothing_started(platform)


def test_body_over_the_limit_is_413_naming_the_option(platform):
    body = b'{"data": {"x": "' + b"a" * 2000 + b'"}}'
    status, answer = post(platform, b"Content-Length: %d\r\n" % len(body), body)
    assert status == 413 and "--max-body" in answer["detail"]
    assert_nothing_started(platform)


def test_the_default_body_limit_is_10_mib_and_a_body_within_it_is_taken(output):
    assert Limits().max_body == 10 * 1024 * 1024
    with serving(output, api=Api.PLATFORM) as client:
        body = b'{"data": {"x": "' + b"a" * (2 * 1024 * 1024) + b'", "values": [7]}}'
        status, job = post(client, b"Content-Length: %d\r\n" % len(body), body)
        assert (status, job["status"]) == (201, "PENDING")
        assert client.wait(job["id"])["status"] == "SUCCEEDED"


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"data": ' * 100_000, b'{"data": {"a": ' + b"[" * 101 + b"]" * 101
                                  + b"}}"], ids=["200k-arrays", "100k-objects", "101-levels"])
def test_too_deeply_nested_json_is_422_without_a_recursion_error(output, body):
    with serving(output, api=Api.PLATFORM, limits=Limits(max_body=1 << 20)) as client:
        status, answer = post(client, b"Content-Length: %d\r\n" % len(body), body)
        assert status == 422 and "deeper than 100 levels" in answer["detail"]
        assert_nothing_started(client)


def test_json_nested_within_the_limit_is_accepted(platform):
    nested = b"[" * 90 + b"]" * 90
    body = b'{"data": {"deep": ' + nested + b', "values": [1]}}'
    status, job = post(platform, b"Content-Length: %d\r\n" % len(body), body)
    assert status == 201
    assert platform.wait(job["id"])["status"] == "SUCCEEDED"


def test_json_depth_skips_brackets_inside_strings():
    assert json_depth(b'{"a": "[[[[{{{{", "b": [["\\"]]]"]]}') == 3
    assert json_depth(b"") == 0


@pytest.mark.parametrize("body, words", [
    (b'{"data": {', "not valid JSON"),
    (b'\xff\xfe{"data": {}}', "not UTF-8"),
    (b'{"data": [1]}', "'data' must be a JSON object or null, not a list"),
])
def test_invalid_json_is_422(platform, body, words):
    status, answer = post(platform, b"Content-Length: %d\r\n" % len(body), body)
    assert status == 422 and words in answer["detail"]
    assert_nothing_started(platform)


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="this Python converts integers of any length")
def test_an_integer_too_long_for_python_is_422(output):
    with serving(output, api=Api.PLATFORM) as client:
        body = b'{"data": {"n": ' + b"9" * 5000 + b"}}"
        status, answer = post(client, b"Content-Length: %d\r\n" % len(body), body)
        assert status == 422 and "not usable JSON" in answer["detail"]
        assert_nothing_started(client)


def test_a_body_that_stops_arriving_is_408_after_the_read_timeout(platform):
    # 10 of 100 bytes, then the client waits for an answer: it gets one, after SMALL.read_timeout
    status, answer = post(platform, b"Content-Length: 100\r\n", b'{"data": {', read_timeout=30)
    assert status == 408 and "(no data for 0.5 s); nothing was started" in answer["detail"]
    assert_nothing_started(platform)


def test_a_client_sending_one_byte_at_a_time_is_cut_off_at_the_request_deadline(platform):
    slow = b"X-Slow: " + b"a" * 100                 # 108 bytes at 0.1 s each: every read is in time ...
    with socket.create_connection(("127.0.0.1", platform.port), timeout=30) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\n")
        for sent, byte in enumerate(slow):  # noqa: B007 (read after the loop)
            if select.select([conn], [], [], 0.1)[0]:   # ... but the whole request is late: answered
                break
            conn.sendall(bytes([byte]))
        status, answer = parse_response(receive_all(conn))
    assert sent < len(slow), "the server waited for the whole slow request"
    assert status == 408 and "within 2 s" in answer["detail"]
    assert_nothing_started(platform)


def test_a_cancel_whose_headers_never_end_is_not_acted_on(platform):
    job = platform.submit({"sleep": 30})
    status, _ = platform.raw(b"PUT /%s/cancel HTTP/1.1\r\nHost: x\r\n" % job["id"].encode(), close_write=True)
    assert status is None
    assert platform.call("GET", f"/{job['id']}")[1]["status"] in ("PENDING", "RUNNING")
    platform.call("PUT", f"/{job['id']}/cancel")


def test_a_malformed_request_line_gets_a_json_400(platform):
    status, answer = platform.raw(b"NOT A REQUEST LINE AT ALL\r\n\r\n")
    assert status == 400 and answer["detail"]


def test_idle_connections_beyond_the_handler_pool_are_closed_and_later_requests_still_answered(platform):
    idle = [socket.create_connection(("127.0.0.1", platform.port), timeout=30) for _ in range(HANDLERS + 8)]
    try:
        assert platform.call("GET", "/") == (200, [])   # waits in the backlog until read timeouts free handlers
        for conn in idle:
            assert receive_all(conn) == b""              # closed by the server, which held no thread forever
    finally:
        for conn in idle:
            conn.close()
