"""Batch invariance for rerankers: a pair scored alone against the same pair inside concurrent mixed requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx


def scores_alone_and_in_concurrent_batches(
    base_url: str, query: str, documents: list[str], num_alone: int, num_requests: int = 4
) -> tuple[list[float], list[float]]:
    """/v1/score of the first `num_alone` documents one request each, then of all of them spread over
    `num_requests` concurrent requests (every request a mix of lengths); both lists in document order."""

    def score(texts: str | list[str]) -> list[float]:
        body = {"text_1": query, "text_2": texts}
        data = httpx.post(f"{base_url}/v1/score", json=body, timeout=60).json()["data"]
        return [item["score"] for item in sorted(data, key=lambda item: item["index"])]

    alone = [score(document)[0] for document in documents[:num_alone]]
    with ThreadPoolExecutor(num_requests) as pool:
        answers = list(pool.map(score, [documents[i::num_requests] for i in range(num_requests)]))
    together = {i + num_requests * index: s for i, scores in enumerate(answers) for index, s in enumerate(scores)}
    return alone, [together[i] for i in range(num_alone)]
