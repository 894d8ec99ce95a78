"""BERT encoders (all-MiniLM, BGE, ...) over packed ragged batches with bidirectional attention."""

from __future__ import annotations

import torch
from torch import nn

from engine.arch_config import BertConfig
from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.encoder_block import EncoderAttention, EncoderMLP
from engine.layers.vocab_embedding import VocabParallelEmbedding
from engine.model_config import ModelConfig
from engine.models.base import EmbeddingModel
from engine.weights import WeightNames


class BertLayer(nn.Module):
    """Post-norm: x = norm(x + attention(x)), then norm(x + mlp(x))."""

    def __init__(self, text: BertConfig, attn: AttentionBackend):
        super().__init__()
        self.self_attn = EncoderAttention(text.hidden_size, text.num_heads, attn)
        self.attention_norm = nn.LayerNorm(text.hidden_size, eps=text.norm_eps)
        self.mlp = EncoderMLP(text.hidden_size, text.intermediate_size, text.activation)
        self.mlp_norm = nn.LayerNorm(text.hidden_size, eps=text.norm_eps)

    def forward(self, x: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        x = self.attention_norm(x + self.self_attn(x, batch))
        return self.mlp_norm(x + self.mlp(x))


class BertEmbeddings(nn.Module):
    def __init__(self, text: BertConfig):
        super().__init__()
        hidden = text.hidden_size
        self.word_embeddings = VocabParallelEmbedding(text.vocab_size, hidden)
        self.position_embeddings = nn.Embedding(text.max_position_embeddings, hidden)
        self.token_type_embeddings = nn.Embedding(text.type_vocab_size, hidden)
        self.norm = nn.LayerNorm(hidden, eps=text.norm_eps)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        # Single-segment inputs: every token has token type 0.
        x = self.word_embeddings(batch.input_ids) + self.position_embeddings(batch.positions)
        return self.norm(x + self.token_type_embeddings.weight[0])


class BertEmbeddingModel(EmbeddingModel):
    """Returns final hidden states (num_tokens, hidden); pooling happens outside the model."""

    weight_names = WeightNames(
        skip=r"(bert\.)?(pooler|cls|classifier|lm_head)\..*|.*position_ids",  # task heads and position buffers
        fused={
            ".attention.self.query.": (".self_attn.qkv_proj.", "q"),
            ".attention.self.key.": (".self_attn.qkv_proj.", "k"),
            ".attention.self.value.": (".self_attn.qkv_proj.", "v"),
        },
        renames={
            r"^bert\.": "",  # task-head checkpoints nest the encoder under bert.
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

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        text = config.text
        assert isinstance(text, BertConfig)  # the registry pairs BERT with BertConfig
        self.embeddings = BertEmbeddings(text)
        self.layers = nn.ModuleList(BertLayer(text, attn) for _ in range(text.num_layers))

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        x = self.embeddings(batch)
        for layer in self.layers:
            x = layer(x, batch)
        return x
