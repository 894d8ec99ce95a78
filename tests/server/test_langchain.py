"""LangChain's OpenAIEmbeddings pointed at a launched server gets the OpenAI client's vectors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from langchain_openai import OpenAIEmbeddings
from openai import OpenAI

from tests.support.compare import assert_close_vectors
from tests.support.texts import varied_texts


@pytest.fixture(scope="module")
def langchain_embeddings(preset_server) -> OpenAIEmbeddings:
    # check_embedding_ctx_length=False: send texts, not tiktoken ids (tiktoken's files come from the internet,
    # and its ids mean nothing to this model's tokenizer).
    return OpenAIEmbeddings(
        model="all-MiniLM-L6-v2",
        base_url=f"{preset_server.base_url}/v1",
        api_key="x",
        check_embedding_ctx_length=False,
        chunk_size=16,  # several requests for the documents below
    )


def test_documents_and_query_match_the_openai_client(preset_server, langchain_embeddings):
    client = OpenAI(base_url=f"{preset_server.base_url}/v1", api_key="x")
    documents = varied_texts(40, long_words=100)
    query = "which document talks about cats?"
    by_langchain = np.array(langchain_embeddings.embed_documents(documents), dtype=np.float32)
    by_client = np.array(
        [d.embedding for d in client.embeddings.create(model="m", input=documents).data], dtype=np.float32
    )
    assert by_langchain.shape == (40, 384)
    assert_close_vectors(by_langchain, by_client)
    query_vector = langchain_embeddings.embed_query(query)
    expected = client.embeddings.create(model="m", input=query).data[0].embedding
    assert_close_vectors([query_vector], [expected])


def test_async_documents_match_sync(langchain_embeddings):
    texts = ["an async request", "through LangChain's async client"]
    by_async = asyncio.run(langchain_embeddings.aembed_documents(texts))
    assert_close_vectors(by_async, langchain_embeddings.embed_documents(texts))
