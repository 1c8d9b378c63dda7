"""Tests for rppgedit.background.InOrder: calls run in order on one thread, a bounded backlog,
errors raised to the caller."""

import threading
import time

import pytest

from rppgedit import background


def test_calls_run_in_submission_order_on_another_thread():
    seen, threads = [], set()

    def record(k):
        time.sleep(0.001 * (k % 3))  # uneven durations must not reorder anything
        seen.append(k)
        threads.add(threading.get_ident())

    with background.InOrder("test-order") as work:
        for k in range(40):
            work.submit(record, k)
    assert seen == list(range(40))  # all done when the block is left
    assert threads and threading.get_ident() not in threads and len(threads) == 1


def test_submit_waits_while_the_backlog_is_full():
    release, started = threading.Event(), []

    def slow(k):
        started.append(k)
        release.wait(5)

    with background.InOrder("test-backlog", backlog=2) as work:
        work.submit(slow, 0)
        work.submit(slow, 1)
        waiting = threading.Thread(target=work.submit, args=(slow, 2))
        waiting.start()
        waiting.join(0.2)
        assert waiting.is_alive()  # two calls pending: the third waits for the first
        release.set()
        waiting.join(5)
        assert not waiting.is_alive()
    assert started == [0, 1, 2]


def test_an_error_reaches_the_caller_and_stops_what_has_not_started():
    ran = []

    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with background.InOrder("test-error", backlog=1) as work:
            work.submit(fail)
            work.submit(ran.append, 1)  # waits for `fail`, whose error it raises
            work.submit(ran.append, 2)
    assert ran == []
    with pytest.raises(OSError, match="disk full"):
        with background.InOrder("test-error-at-exit") as work:
            work.submit(fail)  # raised when the block is left
