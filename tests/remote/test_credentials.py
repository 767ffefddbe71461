"""Credentials come from where users keep them: exported keys, or a profile in ~/.aws."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from tests.remote.conftest import FaultProxy


def test_an_aws_profile_signs_the_requests(
    make_tree: Callable[..., Path],
    tmp_path: Path,
    bucket: str,
    fault_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[backup]\naws_access_key_id = PROFILEKEY\naws_secret_access_key = profile-secret\n"
    )
    config = tmp_path / "config"
    config.write_text("[profile backup]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "backup")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    stc.pack(make_tree(), f"s3://{bucket}/b")
    assert fault_proxy.access_keys == {"PROFILEKEY"}
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(stc.UsageError, match="AWS_PROFILE=no-such-profile"):
        stc.verify(f"s3://{bucket}/b")


def test_exported_keys_win_over_a_profile(
    make_tree: Callable[..., Path],
    bucket: str,
    fault_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")  # not read: keys are exported
    stc.pack(make_tree(), f"s3://{bucket}/b")
    assert fault_proxy.access_keys == {"stc-test-key"}
