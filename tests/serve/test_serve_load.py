"""`cnbsim serve` under a burst: 100 concurrent submissions, and connections that give up mid-body.

Bounded in count (100 jobs, 50 aborted connections) and in time (every wait has a deadline);
nothing here asserts how fast the server is.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time

from servekit import ENDED, receive_all, serving, without_links

from cnbsim.serve import Api

SUBMISSIONS = 100
ABORTED = 50


def test_a_burst_of_100_concurrent_submissions_is_accepted_and_every_job_finishes(output):
    with serving(output, api=Api.PLATFORM, jobs=4) as client:
        answers: dict[int, tuple[int, dict]] = {}
        seconds: list[float] = []
        go = threading.Barrier(SUBMISSIONS)

        def submit(n: int) -> None:
            go.wait(30)
            began = time.monotonic()
            answers[n] = client.call("POST", "/", {"data": {"values": [n]}, "params": {"n": n}}, timeout=120)
            seconds.append(time.monotonic() - began)

        threads = [threading.Thread(target=submit, args=(n,)) for n in range(SUBMISSIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert sorted(answers) == list(range(SUBMISSIONS)), "some submissions got no answer"
        assert {status for status, _ in answers.values()} == {201}
        assert {job["status"] for _, job in answers.values()} == {"PENDING"}
        print(f"POST / p50 {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s "   # a figure, not a check
              f"over {SUBMISSIONS} concurrent submissions")

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            listed = client.call("GET", "/")[1]
            if all(job["status"] in ENDED for job in listed):
                break
            time.sleep(0.5)
        assert len(listed) == SUBMISSIONS
        assert {job["status"] for job in listed} == {"SUCCEEDED"}, [j for j in listed if j["status"] != "SUCCEEDED"]
        for n, (_, job) in answers.items():
            status, result = client.call("GET", f"/{job['id']}/result")
            assert (status, without_links(result)) == (200, {"metadata": None,
                                                             "result": {"params": {"n": n}, "sum": n}})


def test_connections_that_close_before_their_body_has_arrived_start_nothing(output):
    with serving(output, api=Api.PLATFORM) as client:
        answers: list[bytes] = []

        def give_up(n: int) -> None:
            with socket.create_connection(("127.0.0.1", client.port), timeout=30) as conn:
                # a body that would be a valid submission, but shorter than its Content-Length says
                conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n" + b'{"data": {"values": [%d]}}' % n)
                time.sleep(0.2)                  # a slow client ...
                conn.shutdown(socket.SHUT_WR)    # ... that gives up: the server reads the end of the stream
                answers.append(receive_all(conn))   # returns once the server has closed the connection

        threads = [threading.Thread(target=give_up, args=(n,)) for n in range(ABORTED)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert answers == [b""] * ABORTED       # no answer: there is no request to answer
        complete = client.submit({"values": [1]})
        listed = client.call("GET", "/")[1]
        assert [job["id"] for job in listed] == [complete["id"]]
