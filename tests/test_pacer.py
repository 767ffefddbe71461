"""The upload pacer: half as many uploads on each "slow down", one more after a run of
successes, never fewer than one; back-off with full jitter under a doubling ceiling."""

from __future__ import annotations

import random
import threading

import pytest

from streaming_tar_compressor.storage.pacer import BACKOFF_LONGEST, Pacer, backoff


def test_throttles_halve_the_limit_down_to_one() -> None:
    pacer = Pacer(8)
    limits = []
    for _ in range(5):
        pacer.throttled()
        limits.append(pacer.limit)
    assert limits == [4, 2, 1, 1, 1]
    assert pacer.throttles == 5 and pacer.lowest == 1


def test_successes_raise_the_limit_one_at_a_time_up_to_most() -> None:
    pacer = Pacer(4)
    pacer.throttled()
    pacer.throttled()
    assert pacer.limit == 1
    seen = []
    for _ in range(12):
        pacer.succeeded()
        seen.append(pacer.limit)
    # one success at limit 1, two at 2, three at 3; then it stays at most
    assert seen == [2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4]
    assert pacer.lowest == 1


def test_a_throttle_restarts_the_run_of_successes() -> None:
    pacer = Pacer(4)
    pacer.throttled()  # 2
    pacer.succeeded()
    pacer.throttled()  # 1, and the success before no longer counts
    assert pacer.limit == 1
    pacer.succeeded()
    assert pacer.limit == 2


def test_a_slot_waits_while_the_limit_is_taken() -> None:
    pacer = Pacer(2)
    pacer.throttled()  # one at a time
    entered, release = threading.Event(), threading.Event()
    with pacer.slot():

        def second() -> None:
            with pacer.slot():
                entered.set()
                release.wait(30)

        worker = threading.Thread(target=second)
        worker.start()
        assert not entered.wait(0.2)  # the one slot is ours
    assert entered.wait(30)  # ours is free: the other upload runs
    release.set()
    worker.join(30)


def test_more_uploads_run_once_the_limit_grows() -> None:
    pacer = Pacer(2)
    pacer.throttled()
    both = threading.Barrier(2, timeout=30)
    with pacer.slot():
        pacer.succeeded()  # limit 2: a second upload may start while this one runs

        def second() -> None:
            with pacer.slot():
                both.wait()

        worker = threading.Thread(target=second)
        worker.start()
        both.wait()  # would time out (BrokenBarrierError) if the second had to wait for us
    worker.join(30)


def test_pacer_needs_one_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Pacer(0)


def test_backoff_is_jittered_under_a_doubling_ceiling() -> None:
    rng = random.Random(3)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (9, BACKOFF_LONGEST)]:
        waits = [backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert max(waits) > ceiling * 0.8 and min(waits) < ceiling * 0.2  # spread out


def test_after_stop_a_waiting_upload_gets_through_to_see_it() -> None:
    pacer = Pacer(1)
    through = threading.Event()
    with pacer.slot():

        def waiting() -> None:
            with pacer.slot():
                through.set()

        worker = threading.Thread(target=waiting)
        worker.start()
        pacer.stop()
        assert through.wait(30)  # while ours still holds the only slot
    worker.join(30)
