"""sentence-transformers Dense modules on a plain BERT folder: vectors equal SentenceTransformer's, the output size is
the last Dense's, and the Dense modules the engine cannot run exactly are refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.model_config import ModelConfig, ModelConfigError
from engine.model_runner import ModelRunner
from tests.support.compare import assert_close_vectors
from tests.support.encoder_models import build_minilm_with_dense
from tests.support.texts import varied_texts


@pytest.fixture(scope="module")
def minilm_dense(tmp_path_factory) -> str:
    return build_minilm_with_dense(tmp_path_factory.mktemp("models") / "minilm-dense")


def _embed(runner: ModelRunner, tokenizer, texts: list[str]) -> np.ndarray:
    ids = tokenizer(texts, truncation=True, max_length=runner.config.context_length)["input_ids"]
    vectors = runner.embed([np.asarray(x, dtype=np.int32) for x in ids])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_dense_modules_equal_sentence_transformers(minilm_dense, st_model_factory):
    model = st_model_factory(minilm_dense)
    config = ModelConfig.load(minilm_dense)
    assert config.embedding_dim == 256 == model.get_embedding_dimension()
    assert [d.activation for d in config.st_info.dense] == ["tanh", "linear"]
    texts = varied_texts(16, long_words=60)
    runner = ModelRunner(config)
    ours = _embed(runner, model.tokenizer, texts)
    expected = model.encode(texts)
    similarity = expected @ expected.T
    assert similarity[~np.eye(len(texts), dtype=bool)].max() < 0.99, (
        "different texts must get clearly different vectors"
    )
    assert_close_vectors(ours, expected)
    # the Dense modules matter: without them the vector is another one, of the hidden size
    runner.dense = None
    assert _embed(runner, model.tokenizer, texts[:1]).shape == (1, 384)


def _copy(folder: str, destination: Path) -> Path:
    shutil.copytree(folder, destination)
    return destination


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"activation_function": "torch.nn.modules.activation.Softplus"},
            r"'torch\.nn\.modules\.activation\.Softplus'",
        ),
        ({"activation_function": "my_package.Swish"}, r"'my_package\.Swish'"),
        ({"module_input_name": "token_embeddings"}, "module_input_name 'token_embeddings'"),
        ({"in_features": 300}, "takes 300 features, but its input has 384"),
    ],
)
def test_a_dense_module_the_engine_cannot_run_is_refused_by_name(minilm_dense, tmp_path, changes, message):
    folder = _copy(minilm_dense, tmp_path / "folder")
    _edit_json(folder / "2_Dense" / "config.json", **changes)
    with pytest.raises(ModelConfigError, match=message):
        ModelConfig.load(str(folder))


def test_a_dense_module_after_normalize_is_refused(minilm_dense, tmp_path):
    folder = _copy(minilm_dense, tmp_path / "folder")
    modules = json.loads((folder / "modules.json").read_text())
    modules.append(modules.pop(2))  # the first Dense moved after Normalize
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelConfigError, match="'2_Dense' before Pooling or after Normalize"):
        ModelConfig.load(str(folder))


def test_a_dense_module_without_activation_is_tanh_as_in_sentence_transformers(minilm_dense, tmp_path):
    folder = _copy(minilm_dense, tmp_path / "folder")
    config_file = folder / "3_Dense" / "config.json"
    config_file.write_text(json.dumps({k: v for k, v in json.loads(config_file.read_text()).items()
                                       if k != "activation_function"}))  # fmt: skip
    assert [d.activation for d in ModelConfig.load(str(folder)).st_info.dense] == ["tanh", "tanh"]
