"""Local JSONL / CSV files: what loads, and that every defect names the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedledger.learning.data import DatasetError, Sample, load_file, read_dataset


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _jsonl(*objs: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


# --- what loads ---------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "clinic.jsonl",
        _jsonl(
            {"text": "fine", "label": "pos"},
            {"text": "  keep my spaces ", "label": " neg ", "id": "p-7", "domain": "ward"},
        )
        + "\n"  # a blank line is skipped but still counts for line numbers
        + _jsonl({"text": "meh", "label": "neu", "extra": [1, 2]}),
    )
    ds = read_dataset(path)
    assert ds.name == "clinic"
    assert ds.samples == [
        Sample("clinic:1", "fine", "pos", "clinic"),
        Sample("p-7", "  keep my spaces ", "neg", "ward"),
        Sample("clinic:4", "meh", "neu", "clinic"),
    ]
    assert ds.labels == ("neg", "neu", "pos")
    assert ds.domains == ("clinic", "ward")


def test_csv_round_trip(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "bank.csv",
        "\ufefftext,label,id,domain,note\n"
        "plain,a,,,x\n"
        '"a quoted, multi\nline text",b,k1,retail,y\n'
        "after,a,,loans,z\n",
    )
    ds = load_file(path, name="org1")
    assert ds.name == "org1"
    assert ds.samples == [
        Sample("bank:2", "plain", "a", "org1"),
        Sample("k1", "a quoted, multi\nline text", "b", "retail"),
        Sample("bank:5", "after", "a", "loans"),  # line 5: the record above spans 3-4
    ]
    assert ds.labels == ("a", "b")


def test_ids_are_stable_across_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.jsonl", _jsonl(*({"text": f"t{i}", "label": "x"} for i in range(5))))
    assert load_file(path).samples == load_file(path).samples


def test_read_dataset_passes_options_and_rejects_unknown(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.jsonl", _jsonl({"text": "t", "label": "x"}))
    assert read_dataset(str(path), name="mine").name == "mine"
    with pytest.raises(DatasetError, match=r"unknown option\(s\) \['colour'\]"):
        read_dataset(path, colour="red")
    with pytest.raises(DatasetError, match=r"unknown option\(s\) \['max_char'\].*accepted"):
        read_dataset("bbc_news", max_char=10)


def test_read_dataset_unknown_name() -> None:
    with pytest.raises(DatasetError, match="neither a registered dataset"):
        read_dataset("imdb")
    with pytest.raises(DatasetError, match="expected a dataset name or a path"):
        read_dataset(42)  # type: ignore[arg-type]


# --- every defect names the file and the line ---------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "d.jsonl",
            '{"text": "a", "label": "x"}\n{"text": "b", "label": \n',
            r"line 2: invalid JSON",
        ),
        (
            "d.jsonl",
            '{"text": "a", "label": "x"}\n["text", "label"]\n',
            r"line 2: expected a JSON object, got list",
        ),
        (
            "d.jsonl",
            _jsonl({"text": "a", "label": "x"}, {"label": "x"}),
            r"line 2: missing field 'text'",
        ),
        ("d.jsonl", _jsonl({"text": "a"}), r"line 1: missing field 'label'"),
        ("d.jsonl", _jsonl({"text": "  ", "label": "x"}), r"line 1: field 'text' is empty"),
        ("d.jsonl", _jsonl({"text": "a", "label": ""}), r"line 1: field 'label' is empty"),
        (
            "d.jsonl",
            _jsonl({"text": "a", "label": 3}),
            r"line 1: field 'label' must be a string, got int",
        ),
        (
            "d.jsonl",
            _jsonl({"text": ["a"], "label": "x"}),
            r"line 1: field 'text' must be a string, got list",
        ),
        (
            "d.jsonl",
            _jsonl({"text": "a", "label": "x", "id": 7}),
            r"line 1: field 'id' must be a string, got int",
        ),
        (
            "d.jsonl",
            _jsonl({"text": "a", "label": "x", "domain": True}),
            r"line 1: field 'domain' must be a string",
        ),
        (
            "d.jsonl",
            _jsonl({"text": "a", "label": "x", "text2": 1}, {"text": "a", "label": None}),
            r"line 2: missing field 'label'",
        ),
        (
            "d.jsonl",
            _jsonl(
                {"text": "a", "label": "x", "id": "u1"},
                {"text": "b", "label": "x"},
                {"text": "c", "label": "y", "id": "u1"},
            ),
            r"line 3: duplicate id 'u1' \(first used on line 1\)",
        ),
        (
            "d.jsonl",
            _jsonl({"text": "a", "label": "x"}, {"text": "b", "label": "x", "id": "d:1"}),
            r"line 2: duplicate id 'd:1' \(first used on line 1\)",
        ),
        ("d.jsonl", "\n\n  \n", r"file has no records"),
        ("d.csv", "text,label\n", r"file has no records"),
        ("d.csv", "body,label\nx,y\n", r"line 1: header \['body', 'label'\] has no 'text' column"),
        ("d.csv", "text,label,label\nx,y,z\n", r"line 1: header repeats column\(s\) \['label'\]"),
        ("d.csv", "text,label\nok,a\nx,y,z\n", r"line 3: 3 fields, but the header has 2"),
        ("d.csv", "text,label\nok,a\n,b\n", r"line 3: field 'text' is empty"),
        (
            "d.csv",
            "text,label,id\nok,a,r1\nfine,b,r1\n",
            r"line 3: duplicate id 'r1' \(first used on line 2\)",
        ),
        ("d.csv", 'text,label\nok,a\n"unterminated,b\n', r"line 3: malformed CSV"),
        ("d.csv", 'text,label\nok,a\n"quoted"tail,b\n', r"line 3: malformed CSV"),
        (
            "d.jsonl",
            b'{"text": "a", "label": "x"}\n{"text": "\xff", "label": "x"}\n',
            r"line 2: not valid UTF-8",
        ),
    ],
)
def test_defects_name_file_and_line(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = _write(tmp_path, name, content)
    with pytest.raises(DatasetError, match=message) as info:
        load_file(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(DatasetError, match="file does not exist") as info:
        read_dataset(path)
    assert str(path) in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "e.csv", "")
    with pytest.raises(DatasetError, match=r"e\.csv: file is empty"):
        load_file(path)


def test_directory_and_unsupported_suffix(tmp_path: Path) -> None:
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    with pytest.raises(DatasetError, match="not a regular file"):
        load_file(folder)
    with pytest.raises(DatasetError, match=r"unsupported file type '\.txt'"):
        load_file(_write(tmp_path, "d.txt", "x"))


def test_size_cap(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "big.jsonl", _jsonl(*({"text": "x" * 50, "label": "a"} for _ in range(10)))
    )
    with pytest.raises(
        DatasetError, match=r"big\.jsonl: file is \d+ bytes, over the 100-byte limit"
    ):
        load_file(path, max_bytes=100)
    assert len(load_file(path, max_bytes=10_000)) == 10
    with pytest.raises(DatasetError, match="max_bytes"):
        load_file(path, max_bytes=0)
