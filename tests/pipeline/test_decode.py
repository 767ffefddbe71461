"""The parallel block decoder gives what the serial one gives, and checks the whole stream."""

from __future__ import annotations

from pathlib import Path

import pytest

import streaming_tar_compressor as stc
from streaming_tar_compressor.core.tar_reader import MemberData, MemberStart
from streaming_tar_compressor.pipeline.decode import ParallelBlockDecoder, TarStreamDecoder

COMPRESSED = [c for c in stc.CompressionType if c is not stc.CompressionType.NONE]


def decoded(decoder: TarStreamDecoder | ParallelBlockDecoder, stream: bytes) -> list[object]:
    out: list[object] = []
    for start in range(0, len(stream), 7_777):
        for event in decoder.events(stream[start : start + 7_777]):
            out.append(bytes(event.data) if isinstance(event, MemberData) else event)
    out += [bytes(e.data) if isinstance(e, MemberData) else e for e in decoder.finish()]
    return out


def merged(events: list[object]) -> list[object]:
    """Data events joined per member: the two decoders may cut data differently."""
    result: list[object] = []
    for event in events:
        if isinstance(event, bytes) and result and isinstance(result[-1], bytes):
            result[-1] += event
        else:
            result.append(event)
    return result


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.value)
def test_parallel_and_serial_decoding_agree(make_tree, tmp_path, codec):
    tree = make_tree()
    result = stc.pack([tree], tmp_path / "b", compression=codec, block_size=65_536)
    stream = b"".join(Path(c.path).read_bytes() for c in result.chunks)
    assert ParallelBlockDecoder.usable(result.manifest)
    assert len(result.manifest.blocks) > 3
    parallel = merged(decoded(ParallelBlockDecoder(result.manifest, None, 2), stream))
    serial = merged(decoded(TarStreamDecoder(codec), stream))
    assert parallel == serial
    assert sum(isinstance(e, MemberStart) for e in parallel) > 5


def test_a_damaged_gzip_trailer_is_caught_without_checksums(make_tree, tmp_path):
    tree = make_tree()
    result = stc.pack([tree], tmp_path / "b", compression="gzip", chunk_size=10**9)
    part = Path(result.chunks[0].path)
    data = bytearray(part.read_bytes())
    data[-6] ^= 0xFF  # inside the CRC-32 of the trailer
    part.write_bytes(bytes(data))
    with pytest.raises(stc.CorruptStreamError):
        stc.unpack(tmp_path / "b", tmp_path / "out", verify_checksum=False)


def test_a_gzip_block_ending_inside_a_deflate_block_is_refused():
    from streaming_tar_compressor.codecs import codec_for

    stored_block_cut_short = b"\x00" + (8).to_bytes(2, "little") + (0xFFF7).to_bytes(2, "little")
    data = stored_block_cut_short + b"ab" + b"\x00\x00\xff\xff"
    with pytest.raises(stc.CorruptStreamError):
        codec_for(stc.CompressionType.GZIP).decode_block(data, 6)


def test_a_zstd_stream_without_its_seek_table_is_refused():
    from streaming_tar_compressor.codecs import codec_for
    from streaming_tar_compressor.codecs.base import BlockExtent

    with pytest.raises(stc.CorruptStreamError):
        codec_for(stc.CompressionType.ZSTD).check_stream(b"", b"", [BlockExtent(10, 20)])
