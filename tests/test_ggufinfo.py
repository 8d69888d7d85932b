from pathlib import Path

import pytest

from llmcli.errors import ModelFormatError, ModelNotFoundError
from llmcli.models.ggufinfo import read_gguf


def test_reads_the_real_model(stories: Path) -> None:
    info = read_gguf(stories)
    assert info.architecture == "llama"
    assert info.context_length == 2048
    assert 200_000 < info.n_params < 400_000
    assert info.required_size <= info.file_size


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(ModelNotFoundError, match="is a directory"):
        read_gguf(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"hello, this is not a model", "not a GGUF"),
        (b"GGUF\x03\x00\x00\x00" + b"\xff" * 16, "truncated or corrupt"),  # absurd counts
        (b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", "corrupt"),
    ],
)
def test_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError, match=message):
        read_gguf(path)


def test_truncated_model(tmp_path: Path, stories: Path) -> None:
    data = stories.read_bytes()
    path = tmp_path / "half.gguf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="tensors need"):
        read_gguf(path)
    for cut in range(24, 9000, 97):  # cuts inside the metadata, its token texts among them
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError, match="truncated or corrupt"):
            read_gguf(path)
