"""The quality script's retrieval set and its rank measures, on data whose answers are known."""

from __future__ import annotations

import sys

import numpy as np

from tests.support.launch import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))

from quantization_quality import docstring_pairs, normalized, ranking_report  # noqa: E402


def test_docstring_pairs_are_aligned_distinct_and_bounded():
    queries, documents = docstring_pairs(120)
    assert len(queries) == len(documents) == 120
    assert len(set(queries)) == 120 and all(len(d) >= 80 for d in documents)
    assert all(q not in d for q, d in zip(queries, documents, strict=True))  # the query is not in its document


def test_rank_measures_on_known_answers():
    documents = normalized(np.eye(12) + 0.01)
    perfect = ranking_report(documents, documents, np.argsort(-(documents @ documents.T), axis=1)[:, :10])
    assert (perfect["recall_at_1"], perfect["mrr"], perfect["top10_overlap_with_float32"]) == (1.0, 1.0, 1.0)
    shifted = ranking_report(np.roll(documents, 1, axis=0), documents, perfect["top10"])
    assert shifted["recall_at_1"] == 0.0 and shifted["mrr"] < 0.5
    assert shifted["top10_overlap_with_float32"] < 1.0
