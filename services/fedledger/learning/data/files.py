"""An organization's own labelled texts from a local JSONL or CSV file.

This is the entry point for real consortium members, whose data never ships in a
package, so every problem is reported as a ``DatasetError`` that names the file and the
line an administrator has to fix, rather than a ``KeyError`` from deep inside training.

Format (both kinds): fields ``text`` and ``label`` (required, non-empty strings),
``id`` and ``domain`` (optional strings). JSONL is one JSON object per line; blank lines
are skipped. CSV needs a header row naming the columns; other columns are ignored, as
are other JSON keys. Files are UTF-8 (a leading byte-order mark is accepted).

Values: ``text`` is kept verbatim; ``id``, ``label`` and ``domain`` are stripped of
surrounding whitespace, because a stray space in a CSV cell would otherwise create a
separate class. A missing id becomes ``<file stem>:<line number>`` (1-based physical
line, where a CSV record starts), stable as long as the file is only appended to. A
missing domain becomes the dataset name (the file stem by default). Labels are the
sorted set of labels present.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fedledger.learning.data.records import Dataset, Sample
from fedledger.learning.errors import DatasetError

#: Refuse files above this size by default: the loader holds the whole file in memory,
#: and a multi-GB file passed by mistake should fail fast, not exhaust the node.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)
SUPPORTED_SUFFIXES = JSONL_SUFFIXES + CSV_SUFFIXES


def is_supported_file(path: str | Path) -> bool:
    """Whether ``path`` has a suffix this module can load (the file need not exist)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def _read_text(path: Path, max_bytes: int) -> str:
    if not path.exists():
        raise DatasetError(f"{path}: file does not exist")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError(
            f"{path}: file is {size} bytes, over the {max_bytes}-byte limit (max_bytes)"
        )
    if size == 0:
        raise DatasetError(f"{path}: file is empty")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}: line {line}: not valid UTF-8 (byte {raw[exc.start]:#04x} at offset "
            f"{exc.start})"
        ) from None


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    # split on "\n" only: str.splitlines() would also break at U+2028 and other
    # separators that JSON allows inside strings, and shift every later line number
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path}: line {line_no}: invalid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise DatasetError(
                f"{path}: line {line_no}: expected a JSON object, got {type(obj).__name__}"
            )
        yield line_no, obj


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    # strict: a stray or unterminated quote is an error to fix, not a field that
    # silently swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{path}: file is empty") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: line 1: malformed CSV header ({exc})") from None
    header = [h.strip() for h in header]
    for required in ("text", "label"):
        if required not in header:
            raise DatasetError(f"{path}: line 1: header {header} has no {required!r} column")
    duplicated = sorted({h for h in header if h and header.count(h) > 1})
    if duplicated:
        raise DatasetError(f"{path}: line 1: header repeats column(s) {duplicated}")
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"{path}: line {start}: malformed CSV ({exc})") from None
        if not row or all(not cell.strip() for cell in row):
            start = reader.line_num + 1
            continue
        if len(row) != len(header):
            raise DatasetError(
                f"{path}: line {start}: {len(row)} fields, but the header has {len(header)}"
            )
        yield start, dict(zip(header, row, strict=True))
        start = reader.line_num + 1


def _field(
    record: Mapping[str, Any], key: str, path: Path, line: int, *, required: bool
) -> str | None:
    if key not in record or record[key] is None:
        if required:
            raise DatasetError(f"{path}: line {line}: missing field {key!r}")
        return None
    value = record[key]
    if not isinstance(value, str):
        raise DatasetError(
            f"{path}: line {line}: field {key!r} must be a string, got {type(value).__name__}"
        )
    if not value.strip():
        if required:
            raise DatasetError(f"{path}: line {line}: field {key!r} is empty")
        # an empty optional cell (common in CSV) means "not given"
        return None
    return value


def load_file(
    path: str | Path,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    """Load a ``.jsonl`` / ``.ndjson`` or ``.csv`` file of labelled texts.

    ``name`` names the dataset (default: the file stem); it is also the domain of
    samples that do not give one. Raises ``DatasetError`` naming the file (and line)
    for a missing, empty, oversized, undecodable or malformed file, missing/empty or
    non-string fields, and duplicate ids.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DatasetError(
            f"{p}: unsupported file type {p.suffix or '(none)'!r}; "
            f"expected one of {list(SUPPORTED_SUFFIXES)}"
        )
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise DatasetError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    dataset_name = name if name is not None else p.stem
    if not isinstance(dataset_name, str) or not dataset_name.strip():
        raise DatasetError(f"dataset name must be a non-empty string, got {dataset_name!r}")
    text = _read_text(p, max_bytes)
    records = _jsonl_records(p, text) if suffix in JSONL_SUFFIXES else _csv_records(p, text)

    samples: list[Sample] = []
    first_line_of: dict[str, int] = {}
    for line, record in records:
        sample_text = _field(record, "text", p, line, required=True)
        label = _field(record, "label", p, line, required=True)
        given_id = _field(record, "id", p, line, required=False)
        domain = _field(record, "domain", p, line, required=False)
        assert sample_text is not None and label is not None  # required=True guarantees it
        sid = given_id.strip() if given_id is not None else f"{p.stem}:{line}"
        if sid in first_line_of:
            raise DatasetError(
                f"{p}: line {line}: duplicate id {sid!r} (first used on line {first_line_of[sid]})"
            )
        first_line_of[sid] = line
        samples.append(
            Sample(
                sample_id=sid,
                text=sample_text,
                label=label.strip(),
                domain=domain.strip() if domain is not None else dataset_name,
            )
        )
    if not samples:
        raise DatasetError(f"{p}: file has no records")
    labels = tuple(sorted({s.label for s in samples}))
    domains = tuple(dict.fromkeys(s.domain for s in samples))
    return Dataset(name=dataset_name, samples=samples, labels=labels, domains=domains)
