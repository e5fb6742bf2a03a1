"""references.bib: every source can be followed, keeps its capitals, and has a label of its
own that reads exactly like its author-year citation in the text; the list is in
author-year order, with pages that have no author under the body that published them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pybtex.database
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))

from author_year_bibliography import AuthorYearLabels, AuthorYearSorting, author_year  # noqa: E402

BIB = pybtex.database.parse_file(str(ROOT / "references.bib"))
SEED_KEYS = {"forum_ce_backward", "forum_backward_of_ce", "robotchinwag_ce_gradient",
             "forum_ce_math", "forum_ce_grad_fastai"}


@pytest.mark.parametrize("key", sorted(BIB.entries))
def test_every_source_has_a_url_or_doi(key: str) -> None:
    fields = BIB.entries[key].fields
    assert fields.get("url") or fields.get("doi"), f"{key} cannot be followed: no url or doi"


@pytest.mark.parametrize("key", sorted(BIB.entries))
def test_titles_are_braced_so_no_style_changes_their_capitals(key: str) -> None:
    title = BIB.entries[key].fields["title"]
    assert title.startswith("{") and title.endswith("}"), f"{key}: title {title!r} is not braced"


def test_the_seed_threads_link_to_their_pages() -> None:
    for key in SEED_KEYS:
        assert BIB.entries[key].fields["url"].startswith("https://"), key


def test_labels_are_distinct_and_read_like_the_citations() -> None:
    entries = sorted(BIB.entries.values(), key=lambda e: e.key)
    labels = list(AuthorYearLabels().format_labels(entries))
    assert len(set(labels)) == len(labels), labels
    assert author_year(BIB.entries["meurer2017sympy"]) == "Meurer et al., 2017"
    assert author_year(BIB.entries["glorot2010understanding"]) == "Glorot and Bengio, 2010"
    assert author_year(BIB.entries["pytorch_nll_loss"]) == "PyTorch docs, 2026"
    assert author_year(BIB.entries["forum_ce_math"]) == "PyTorch Forums, 2020"
    assert author_year(BIB.entries["ieee754"]) == "IEEE, 2019"


def _sorted_labels() -> list[tuple[str, str]]:
    entries = sorted(BIB.entries.values(), key=AuthorYearSorting().sorting_key)
    labels = list(AuthorYearLabels().format_labels(entries))
    return [(e.key, label) for e, label in zip(entries, labels, strict=True)]


def test_the_list_is_in_author_year_order() -> None:
    labels = [label for _, label in _sorted_labels()]
    names = [label.rsplit(", ", 1)[0].lower() for label in labels]
    assert names == sorted(names), labels
    # the braced corporate author sorts among the I's, not after the Z's
    assert names.index("ieee") < names.index("karpathy")
    years = [label.rsplit(", ", 1)[1] for label in labels if label.startswith("PyTorch Forums")]
    assert years == sorted(years), years


def test_pages_without_an_author_are_labelled_by_their_publisher_not_their_title() -> None:
    for key, label in _sorted_labels():
        entry = BIB.entries[key]
        title = entry.fields["title"].strip("{}")
        assert title not in label, f"{key}: the label {label!r} repeats the title"
        if not entry.persons:
            assert entry.fields.get("shortauthor"), f"{key}: no author and no shortauthor"
    labels = dict(_sorted_labels())
    docs = sorted(v for k, v in labels.items() if k.startswith("pytorch_") and "issue" not in k)
    assert docs == [f"PyTorch docs, 2026{c}" for c in "abcdef"[:len(docs)]], docs


def test_every_cited_key_exists() -> None:
    texts = [p.read_text() for p in [*ROOT.glob("chapters/*.ipynb"), *ROOT.glob("*.md")]]
    cited = {key.strip() for text in texts for group in re.findall(r"\{cite[pt]?\}`([^`]+)`", text)
             for key in group.split(",")}
    assert cited and cited <= set(BIB.entries), sorted(cited - set(BIB.entries))
