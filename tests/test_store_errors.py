"""Which answers of a store are worth asking again: obstore's error text, first line only."""

from __future__ import annotations

import pytest

from streaming_tar_compressor.storage.store import _may_change, is_full

PUT = "Generic S3 error: Error performing PUT http://127.0.0.1:9000/b/k in 1.2ms - "


@pytest.mark.parametrize(
    ("answer", "again"),
    [
        (PUT + "Server returned non-2xx status code: 503 Service Unavailable: SlowDown", True),
        (PUT + "Server returned non-2xx status code: 429 Too Many Requests: ", True),
        (PUT + "Server returned non-2xx status code: 500 Internal Server Error: ", True),
        (PUT + "Server returned non-2xx status code: 408 Request Timeout: ", True),
        (PUT + "Server returned non-2xx status code: 501 Not Implemented: ", False),
        (PUT + "Server returned non-2xx status code: 400 Bad Request: <Code>BadDigest", True),
        (
            PUT + "Server returned non-2xx status code: 400 Bad Request: "
            "<Code>XAmzContentSHA256Mismatch</Code>",
            True,
        ),
        (PUT + "Server returned non-2xx status code: 400 Bad Request: <Code>InvalidBucket", False),
        (PUT + "Server returned non-2xx status code: 301 Moved Permanently: ", False),
        (PUT + "HTTP error: error sending request", True),
        ("Generic GCS error: Version required for conditional update", False),
        ("Generic S3 error: Unable to find region for bucket", False),
    ],
)
def test_what_is_asked_again(answer: str, again: bool) -> None:
    assert _may_change(answer) is again


XML = "<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{}</Code><Message>m</Message></Error>"


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (PUT + "Server returned non-2xx status code: 507 Insufficient Storage: ", True),
        (
            PUT + "Server returned non-2xx status code: 507 : " + XML.format("XMinioStorageFull"),
            True,
        ),
        (
            PUT
            + "Server returned non-2xx status code: 403 Forbidden: "
            + XML.format("QuotaExceeded"),
            True,
        ),
        (
            PUT + "status code: 400 Bad Request: " + XML.format("XMinioAdminBucketQuotaExceeded"),
            True,
        ),
        (PUT + "Server returned non-2xx status code: 503 Service Unavailable: SlowDown", False),
        (
            PUT
            + "Server returned non-2xx status code: 403 Forbidden: "
            + XML.format("AccessDenied"),
            False,
        ),
        # A key that happens to be named like a code is no answer of the store.
        (
            PUT.replace("/b/k", "/b/QuotaExceeded/k")
            + "status code: 503 : "
            + XML.format("SlowDown"),
            False,
        ),
    ],
)
def test_a_store_out_of_room_is_told_from_other_answers(error: str, full: bool) -> None:
    assert is_full(error) is full
