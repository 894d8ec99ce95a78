"""BERT encoders (all-MiniLM, BGE, ...) and BERT rerankers over packed ragged batches with bidirectional attention."""

from __future__ import annotations

from typing import ClassVar, cast

import torch
from torch import nn

from engine.arch_config import BertConfig
from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.encoder_block import EncoderAttention, EncoderMLP
from engine.layers.vocab_embedding import VocabParallelEmbedding
from engine.model_config import ModelConfig
from engine.models.base import EmbeddingModel
from engine.pooling import pooled_row_indices
from engine.weights import WeightNames


class BertLayer(nn.Module):
    """Post-norm: x = norm(x + attention(x)), then norm(x + mlp(x))."""

    def __init__(self, text: BertConfig, attn: AttentionBackend):
        super().__init__()
        self.self_attn = EncoderAttention(text.hidden_size, text.num_heads, attn)
        self.attention_norm = nn.LayerNorm(text.hidden_size, eps=text.norm_eps)
        self.mlp = EncoderMLP(text.hidden_size, text.intermediate_size, text.activation)
        self.mlp_norm = nn.LayerNorm(text.hidden_size, eps=text.norm_eps)

    def forward(self, x: torch.Tensor, batch: ForwardBatch, pooled_rows: torch.Tensor | None = None) -> torch.Tensor:
        """`pooled_rows`: everything after attention for those rows alone -> (num_seqs, hidden)."""
        residual = x if pooled_rows is None else x.index_select(0, pooled_rows)
        x = self.attention_norm(self.self_attn(x, batch, residual=residual, pooled_rows=pooled_rows))
        return self.mlp_norm(self.mlp(x, residual=x))


class BertEmbeddings(nn.Module):
    def __init__(self, text: BertConfig):
        super().__init__()
        hidden = text.hidden_size
        self.word_embeddings = VocabParallelEmbedding(text.vocab_size, hidden)
        self.position_embeddings = nn.Embedding(text.max_position_embeddings, hidden)
        self.token_type_embeddings = nn.Embedding(text.type_vocab_size, hidden)
        self.norm = nn.LayerNorm(hidden, eps=text.norm_eps)

    def positions(self, batch: ForwardBatch) -> torch.Tensor:
        return batch.positions

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        x = self.word_embeddings(batch.input_ids) + self.position_embeddings(self.positions(batch))
        if batch.token_type_ids is None:  # single texts: every token is segment 0
            return self.norm(x + self.token_type_embeddings.weight[0])
        return self.norm(x + self.token_type_embeddings(batch.token_type_ids))


class ClassificationHead(nn.Module):
    """The CLS state through dense + tanh, then one logit per label: BERT's pooler and classifier, RoBERTa's classifier."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.out_proj(torch.tanh(self.dense(cls)))


def encoder_weight_names(prefix: str, skipped_heads: str, head_renames: dict[str, str] | None = None) -> WeightNames:
    """BERT-layout checkpoints: `prefix` nests the encoder in task-head saves (bert., roberta.); `skipped_heads`
    lists the heads not loaded; `head_renames` maps the classifier's names onto ClassificationHead's."""
    return WeightNames(
        skip=rf"({prefix}\.)?({skipped_heads})\..*|.*position_ids",  # unused heads and position buffers
        fused={
            ".attention.self.query.": (".self_attn.qkv_proj.", "q"),
            ".attention.self.key.": (".self_attn.qkv_proj.", "k"),
            ".attention.self.value.": (".self_attn.qkv_proj.", "v"),
        },
        renames={
            rf"^{prefix}\.": "",
            **(head_renames or {}),
            r"\.gamma$": ".weight",  # LayerNorm, as old TensorFlow-converted checkpoints name it
            r"\.beta$": ".bias",
            r"^embeddings\.LayerNorm\.": "embeddings.norm.",
            r"^encoder\.layer\.": "layers.",
            r"\.attention\.output\.dense\.": ".self_attn.o_proj.",
            r"\.attention\.output\.LayerNorm\.": ".attention_norm.",
            r"\.intermediate\.dense\.": ".mlp.fc1.",
            r"\.output\.dense\.": ".mlp.fc2.",  # after attention.output.dense above
            r"\.output\.LayerNorm\.": ".mlp_norm.",
        },
    )


class BertEmbeddingModel(EmbeddingModel):
    """Returns final hidden states (num_tokens, hidden); pooling happens outside the model."""

    embeddings_class: ClassVar[type[BertEmbeddings]] = BertEmbeddings
    weight_names = encoder_weight_names("bert", "pooler|cls|classifier|lm_head")

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        text = config.text
        assert isinstance(text, BertConfig)  # the registry pairs BERT with BertConfig
        self.embeddings = self.embeddings_class(text)
        self.layers = nn.ModuleList(BertLayer(text, attn) for _ in range(text.num_layers))

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        """(num_tokens, hidden); (num_seqs, hidden) when batch.pooled_rows is set: the last layer runs on those."""
        x = self.embeddings(batch)
        for layer in self.layers[:-1]:
            x = layer(x, batch)
        return self.layers[-1](x, batch, pooled_rows=batch.pooled_rows)

    def finishes_on_pooled_rows(self, pooling: str) -> bool:
        # bidirectional: one query per sequence sees all of it, wherever the pooled token sits
        return pooling in ("cls", "last") and cast(BertLayer, self.layers[-1]).self_attn.attends_from_rows()


class BertCrossEncoder(BertEmbeddingModel):
    """A reranker (BertForSequenceClassification): one float32 logit per label for each query-document pair."""

    pools_itself = True
    reads_one_row = "cls"
    weight_names = encoder_weight_names(
        "bert", "cls|lm_head", {r"^pooler\.dense\.": "head.dense.", r"^classifier\.": "head.out_proj."}
    )

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        self.head = ClassificationHead(config.text.hidden_size, config.num_labels)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        hidden = super().forward(batch)
        cls = hidden if batch.pooled_rows is not None else hidden[pooled_row_indices(batch.cu_seqlens, "cls")]
        return self.head(cls).float()  # (num_seqs, num_labels)
