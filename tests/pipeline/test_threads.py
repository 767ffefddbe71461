"""in_background: order kept, errors carried over, bounded, and no thread left behind;
HashInThread: the same digest as hashlib, and its thread gone once closed."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator

import pytest

from streaming_tar_compressor.pipeline.threads import HashInThread, in_background


def names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_items_come_in_order_and_the_thread_ends():
    assert list(in_background(range(1000), depth=3, name="stc-test-order")) == list(range(1000))
    assert "stc-test-order" not in names()


def test_a_producer_error_reaches_the_consumer():
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("broken source")

    items = in_background(failing(), depth=2, name="stc-test-error")
    assert next(items) == 1
    with pytest.raises(ValueError, match="broken source"):
        next(items)
    assert "stc-test-error" not in names()


def test_the_producer_runs_at_most_depth_items_ahead():
    produced: list[int] = []

    def counting() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    items = in_background(counting(), depth=2, name="stc-test-bound")
    assert next(items) == 0
    time.sleep(0.2)  # give the producer every chance to run ahead
    assert len(produced) <= 1 + 2 + 1  # the one taken, the queue, the one it holds
    items.close()


def test_closing_early_stops_and_joins_the_producer_and_closes_its_source():
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    items = in_background(endless(), depth=2, name="stc-test-close")
    assert next(items) == 0
    items.close()
    assert closed.is_set()
    assert "stc-test-close" not in names()


def test_closing_from_inside_the_producer_does_not_deadlock():
    from streaming_tar_compressor.pipeline.threads import Background

    holder: list[Background[int]] = []

    def self_closing() -> Iterator[int]:
        yield 1
        holder[0].close()  # as a garbage collection run in this thread might do
        yield 2

    producer = Background(self_closing(), depth=1, name="stc-test-self")
    holder.append(producer)
    assert next(producer) == 1
    producer.close()
    assert "stc-test-self" not in names()


def test_a_hash_in_a_thread_equals_hashlib_over_the_same_pieces_in_order() -> None:
    noise = random.Random(8)
    pieces = [noise.randbytes(noise.randrange(0, 70_000)) for _ in range(60)]
    hashed = HashInThread(hashlib.sha256(), depth=3)
    try:
        for piece in pieces:
            hashed.update(memoryview(piece))
        assert hashed.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
        hashed.update(b"more")  # a digest midway does not end it
        assert hashed.hexdigest() == hashlib.sha256(b"".join(pieces) + b"more").hexdigest()
    finally:
        hashed.close()


def test_a_closed_hash_thread_is_gone_and_takes_no_more() -> None:
    hashed = HashInThread(hashlib.sha256(), name="stc-test-hash")
    hashed.update(b"abc")
    assert "stc-test-hash" in names()
    hashed.close()
    assert "stc-test-hash" not in names()
    with pytest.raises(RuntimeError, match="after close"):
        hashed.update(b"d")
    hashed.close()  # twice is fine
