"""A tiny random-weight Qwen3-Reranker stand-in (Qwen3ForCausalLM) at a trained scale with the real Qwen3 tokenizer,
and the model card's recipe run with transformers as the independent reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tests.support.decoder_models import TINY_SHAPE, qwen_tokenizer_dir

PRESET = Path(__file__).resolve().parents[2] / "configs" / "qwen3-reranker-0.6b.yaml"
# The overrides the preset sets, for loading the folder in-process as the server does.
RERANKER_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}


def _randomize_at_trained_scale(model: torch.nn.Module, seed: int) -> None:
    """Matrices with std 1/sqrt(fan_in), RMSNorm gains near 1: the last token's state depends on the whole prompt."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(noise / param.shape[1] ** 0.5 if param.ndim == 2 else 1 + 0.1 * noise)


def build_tiny_qwen3_reranker(destination: Path, tie_word_embeddings: bool = False, seed: int = 0) -> str:
    """Untied: the scoring rows come from lm_head.weight; tied (as Qwen3-Reranker-0.6B): from the embeddings."""
    import transformers

    tokenizer_dir = qwen_tokenizer_dir()
    vocab_size = len(transformers.AutoTokenizer.from_pretrained(tokenizer_dir))
    config = transformers.Qwen3Config(
        **TINY_SHAPE, head_dim=32, vocab_size=vocab_size, tie_word_embeddings=tie_word_embeddings
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    _randomize_at_trained_scale(model, seed)
    if tie_word_embeddings:
        model.tie_weights()
    destination.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(destination)
    for file in tokenizer_dir.iterdir():
        if file.is_file():
            shutil.copy(file, destination / file.name)
    return str(destination)


class CardReference:
    """Qwen3-Reranker's model card recipe, written out here (not the server's prompt builder): P("yes") per pair."""

    def __init__(self, folder: str, max_length: int):
        import transformers

        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder, padding_side="left")
        self.model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.max_length = max_length
        self.no_id = self.tokenizer.convert_tokens_to_ids("no")
        self.yes_id = self.tokenizer.convert_tokens_to_ids("yes")
        prefix = (
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
            'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        )
        suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        self.prefix_ids = self.tokenizer.encode(prefix, add_special_tokens=False)
        self.suffix_ids = self.tokenizer.encode(suffix, add_special_tokens=False)

    def logits(self, query: str, documents: list[str], instruction: str | None = None) -> torch.Tensor:
        """(num_documents, 2): the last token's logits of "no" and "yes"."""
        if instruction is None:
            instruction = "Given a web search query, retrieve relevant passages that answer the query"
        texts = [f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}" for doc in documents]
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        encoded = self.tokenizer(
            texts, padding=False, truncation="longest_first", return_attention_mask=False, max_length=budget
        )
        encoded["input_ids"] = [self.prefix_ids + ids + self.suffix_ids for ids in encoded["input_ids"]]
        batch = self.tokenizer.pad(encoded, padding=True, return_tensors="pt")  # left: the last token is real
        with torch.inference_mode():
            # the card computes every position's logits; the last one's alone are the same numbers, and far cheaper
            last = self.model(**batch, logits_to_keep=1).logits[:, -1, :]
        return torch.stack([last[:, self.no_id], last[:, self.yes_id]], dim=1)

    def probabilities(self, query: str, documents: list[str], instruction: str | None = None) -> list[float]:
        return torch.log_softmax(self.logits(query, documents, instruction), dim=1)[:, 1].exp().tolist()

    def log_odds(self, query: str, documents: list[str], instruction: str | None = None) -> list[float]:
        no, yes = self.logits(query, documents, instruction).unbind(1)
        return (yes - no).tolist()
