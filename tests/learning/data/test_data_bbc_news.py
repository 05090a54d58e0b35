"""bbc_news: counts per topic, ids, text shaping, the odd files, and de-duplication."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from fedledger.learning.data import Dataset, DatasetError, bbc_news, load_bbc_news, read_dataset

EXPECTED_TOPICS = {
    "business": 510,
    "entertainment": 386,
    "politics": 417,
    "sports": 511,
    "tech": 401,
}


def test_counts_labels_and_domain(bbc: Dataset) -> None:
    assert bbc.name == "bbc_news"
    assert len(bbc) == 2225
    assert bbc.labels == ("business", "entertainment", "politics", "sports", "tech")
    assert Counter(s.label for s in bbc.samples) == EXPECTED_TOPICS
    assert bbc.domains == ("bbc",)
    assert {s.domain for s in bbc.samples} == {"bbc"}


def test_ids_unique_well_formed_and_stable(bbc: Dataset) -> None:
    ids = [s.sample_id for s in bbc.samples]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "bbc_news:business/001.txt"
    for s in bbc.samples:
        m = re.fullmatch(r"bbc_news:([a-z]+)/(\d{3}\.txt)", s.sample_id)
        assert m and m.group(1) == s.label
    assert read_dataset("bbc_news").samples == bbc.samples


def test_text_is_title_then_body_within_budget(bbc: Dataset) -> None:
    first = bbc.samples[0]
    title, body = first.text.split("\n", 1)
    assert title == "Ad sales boost Time Warner profit"
    assert body.startswith("Quarterly profits at US media giant TimeWarner")
    assert "\n" not in body
    assert max(len(s.text) for s in bbc.samples) <= 1000
    # cut on a word boundary: the kept text is a prefix of the untruncated one and
    # ends where the full text has a space
    full = {s.sample_id: s.text for s in load_bbc_news(max_chars=None).samples}
    for s in bbc.samples[:200]:
        whole = full[s.sample_id]
        assert whole.startswith(s.text)
        assert len(s.text) == len(whole) or whole[len(s.text)].isspace()


def test_max_chars_option() -> None:
    short = load_bbc_news(max_chars=100)
    assert max(len(s.text) for s in short.samples) <= 100
    unlimited = load_bbc_news(max_chars=None)
    assert max(len(s.text) for s in unlimited.samples) > 5000


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True])
def test_max_chars_validated(bad: object) -> None:
    with pytest.raises(DatasetError, match="max_chars"):
        load_bbc_news(max_chars=bad)  # type: ignore[arg-type]


def test_files_that_file_calls_archives_are_articles(bbc: Dataset) -> None:
    by_id = {s.sample_id: s for s in bbc.samples}
    assert by_id["bbc_news:tech/239.txt"].text.startswith("Go-ahead for new internet names\n")
    assert by_id["bbc_news:business/363.txt"].text.startswith("Go-ahead for Balkan oil pipeline\n")
    assert by_id["bbc_news:business/278.txt"].text.startswith("SBC plans post-takeover job cuts\n")


def test_latin1_article_is_decoded_not_replaced(bbc: Dataset) -> None:
    mutu = next(s for s in bbc.samples if s.sample_id == "bbc_news:sports/199.txt")
    assert "\ufffd" not in mutu.text
    assert "£15.8m" in mutu.text
    assert not any("\ufffd" in s.text for s in bbc.samples)


def test_deduplicate() -> None:
    deduped = load_bbc_news(deduplicate=True)
    assert len(deduped) == 2114
    assert Counter(s.label for s in deduped.samples) == {
        "business": 503,
        "entertainment": 366,
        "politics": 401,
        "sports": 502,
        "tech": 342,
    }
    texts = [s.text for s in deduped.samples]
    assert len(set(texts)) == len(texts)
    # byte-identical files only, when nothing is truncated
    assert len(load_bbc_news(deduplicate=True, max_chars=None)) == 2125


def test_truncate() -> None:
    assert bbc_news.truncate("abc def", None) == "abc def"
    assert bbc_news.truncate("abc def", 7) == "abc def"
    assert bbc_news.truncate("abc defgh", 6) == "abc"
    assert bbc_news.truncate("abc def", 4) == "abc"
    assert bbc_news.truncate("abcdefgh", 3) == "abc"  # one long token is cut, not emptied


def test_broken_copy(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_bbc_news(path=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="topic folder 'business' is missing"):
        load_bbc_news(path=tmp_path)
    for topic in bbc_news.TOPICS:
        (tmp_path / topic).mkdir()
        (tmp_path / topic / "001.txt").write_text(f"{topic} title\n\nbody\n", encoding="utf-8")
    assert len(load_bbc_news(path=tmp_path)) == 5
    (tmp_path / "tech" / "002.txt").write_text("\n\nbody only\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"002\.txt: line 1: empty title"):
        load_bbc_news(path=tmp_path)
