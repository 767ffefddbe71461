"""GCS replaces an object only when its generation matches, and obstore refuses an If-Match
put that lacks it: the generation of every ETag seen goes along. No GCS emulator answers
obstore's requests (see the README), so this drives obstore's real GCS client at a closed
port: whether it sends the request or refuses it before sending tells the two apart."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from streaming_tar_compressor.errors import StoreError, TransientStoreError
from streaming_tar_compressor.storage.location import RemotePrefix, parse_prefix
from streaming_tar_compressor.storage.store import ObstoreStore, with_version


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gcs_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObstoreStore:
    """A gs:// store whose requests go to a closed port, with no sign-in."""
    account = {
        "type": "service_account",
        "client_email": "stc-test@example.iam.gserviceaccount.com",
        "private_key": "",
        "private_key_id": "stc-test",
        "gcs_base_url": f"http://127.0.0.1:{closed_port()}",
        "disable_oauth": True,
    }
    path = tmp_path / "account.json"
    path.write_text(json.dumps(account))
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", str(path))
    location = parse_prefix("gs://bucket/backups/a")
    assert isinstance(location, RemotePrefix)
    return ObstoreStore(location)


def test_an_if_match_put_with_a_known_etag_is_sent_with_its_generation(
    gcs_store: ObstoreStore,
) -> None:
    gcs_store._versions["a.manifest.json", '"v1"'] = "1712345678901234"
    with pytest.raises(TransientStoreError, match="error sending request"):
        gcs_store.put("a.manifest.json", b"{}", mode={"e_tag": '"v1"'}, retry=False)


def test_without_a_generation_obstore_refuses_before_sending(gcs_store: ObstoreStore) -> None:
    with pytest.raises(StoreError, match="Version required") as refused:
        gcs_store.put("a.manifest.json", b"{}", mode={"e_tag": '"unseen"'}, retry=False)
    assert not isinstance(refused.value, TransientStoreError)  # retrying cannot help


def test_with_version_adds_only_a_generation_it_knows() -> None:
    versions = {("a.manifest.json", '"abc"'): "1712345678901234"}
    assert with_version({"e_tag": '"abc"'}, versions, "a.manifest.json") == {
        "e_tag": '"abc"',
        "version": "1712345678901234",
    }
    # The same ETag on another object (GCS ETags are content hashes): not its generation.
    assert with_version({"e_tag": '"abc"'}, versions, ".a.lock") == {"e_tag": '"abc"'}
    assert with_version({"e_tag": '"other"'}, versions, "a.manifest.json") == {"e_tag": '"other"'}
    assert with_version({"e_tag": '"abc"', "version": "7"}, versions, "a.manifest.json") == {
        "e_tag": '"abc"',
        "version": "7",
    }
    assert with_version("create", versions, "a.manifest.json") == "create"
