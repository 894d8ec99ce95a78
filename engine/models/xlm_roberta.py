"""XLM-RoBERTa encoders (bge-m3, multilingual-e5) and rerankers (bge-reranker-v2-m3): BERT's layers, RoBERTa's positions."""

from __future__ import annotations

import torch

from engine.arch_config import XLMRobertaConfig
from engine.forward_batch import ForwardBatch
from engine.models.bert import BertCrossEncoder, BertEmbeddingModel, BertEmbeddings, encoder_weight_names


class XLMRobertaEmbeddings(BertEmbeddings):
    def __init__(self, text: XLMRobertaConfig):
        super().__init__(text)
        self.padding_idx = text.pad_token_id

    def positions(self, batch: ForwardBatch) -> torch.Tensor:
        """transformers' `create_position_ids_from_input_ids`, per sequence of the packed batch.

        A token's position is padding_idx + its 1-based count among its sequence's non-padding tokens, and a
        padding token (a literal `<pad>` in a text) sits at padding_idx: so every padding token shifts the
        tokens after it. Without one, this is the batch's own positions (offset padding_idx + 1).
        """
        is_pad = (batch.input_ids == self.padding_idx).to(torch.int64)
        pads_so_far = torch.cumsum(is_pad, 0)
        starts = batch.cu_seqlens[:-1].long()
        pads_before_each_sequence = pads_so_far[starts] - is_pad[starts]
        seq_lens = batch.cu_seqlens[1:] - batch.cu_seqlens[:-1]
        pads_in_sequence = pads_so_far - torch.repeat_interleave(
            pads_before_each_sequence, seq_lens, output_size=batch.num_tokens
        )
        return torch.where(is_pad.bool(), self.padding_idx, batch.positions - pads_in_sequence)


class XLMRobertaEmbeddingModel(BertEmbeddingModel):
    """XLMRobertaModel: final hidden states (num_tokens, hidden); pooling from the folder happens outside."""

    embeddings_class = XLMRobertaEmbeddings
    weight_names = encoder_weight_names("roberta", "pooler|classifier|lm_head")


class XLMRobertaCrossEncoder(BertCrossEncoder):
    """XLMRobertaForSequenceClassification: its classifier (dense + tanh + out_proj) on the <s> state."""

    embeddings_class = XLMRobertaEmbeddings
    weight_names = encoder_weight_names(
        "roberta",
        "pooler|lm_head",
        {r"^classifier\.dense\.": "head.dense.", r"^classifier\.out_proj\.": "head.out_proj."},
    )
