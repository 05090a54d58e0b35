"""Update files: PEFT adapter round trip, and rejection of every kind of malformed
untrusted update, each with its reason code and a message naming what was wrong."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from fedledger.digests import sha256_hex
from fedledger.learning.errors import ConfigError, UpdateRejectedError
from fedledger.learning.updates import (
    CONFIG_NAME,
    MAX_HEADER_BYTES,
    SAFETENSORS_WEIGHTS_NAME,
    AdapterSpec,
    load_adapter_folder,
    load_update_bytes,
    load_update_file,
    save_adapter,
    update_bytes,
)

A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
SPEC = AdapterSpec({A: (4, 16), B: (16, 4)})
LIMIT = 1 << 20
INF = float("inf")
CONFIG = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}


def _state(
    dtype: torch.dtype = torch.float32, **overrides: torch.Tensor
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    state = {A: torch.randn(4, 16, generator=gen), B: torch.randn(16, 4, generator=gen)}
    state = {k: v.to(dtype) for k, v in state.items()}
    state.update(overrides)
    return state


def _raw(header: dict | bytes | str, payload: bytes = b"") -> bytes:
    """safetensors bytes from an arbitrary header, for crafting malformed files."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    return struct.pack("<Q", len(header)) + header + payload


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _edit(edit: Callable[[dict], None], extra_payload: bytes = b"") -> bytes:
    header, payload = _split(update_bytes(_state()))
    edit(header)
    return _raw(header, payload + extra_payload)


def _set(name: str, field: str, value: object) -> Callable[[dict], None]:
    def edit(header: dict) -> None:
        header[name][field] = value

    return edit


def _dup_header() -> bytes:
    header, payload = _split(update_bytes(_state()))
    text = json.dumps(header)
    a_entry = json.dumps(header[A])
    # the same tensor name twice: json.loads would silently keep the last one
    text = text[:-1] + f', "{A}": {a_entry}' + "}"
    return _raw(text, payload)


VALID = update_bytes(_state())

# id, bytes, max_bytes, reason, key, fragments the message must contain
MALFORMED = [
    ("empty", b"", LIMIT, "empty", None, ["0 bytes"]),
    ("oversized", VALID, len(VALID) - 1, "too_large", None, [str(len(VALID)), str(len(VALID) - 1)]),
    ("truncated_length", b"\x10\x00\x00", LIMIT, "truncated", None, ["3 bytes", "8-byte"]),
    ("length_past_end", _raw('{"a":1}')[:8] + b"{}", LIMIT, "truncated", None, ["header length 7"]),
    (
        "header_too_large",
        struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}",
        LIMIT,
        "header_too_large",
        None,
        [str(MAX_HEADER_BYTES + 1)],
    ),
    ("header_not_json", _raw('{"a": [1, '), LIMIT, "bad_header", None, ["not valid JSON"]),
    ("header_not_utf8", _raw(b'{"\xff": 1}'), LIMIT, "bad_header", None, ["not valid JSON"]),
    ("header_nan_constant", _raw('{"a": NaN}'), LIMIT, "bad_header", None, ["NaN"]),
    ("header_array", _raw("[1, 2]"), LIMIT, "not_safetensors", None, ["b'['"]),
    ("entry_not_object", _raw({A: 5}), LIMIT, "bad_header", A, [A, "int"]),
    ("duplicate_key", _dup_header(), LIMIT, "duplicate_key", A, [A, "duplicate"]),
    (
        "entry_missing_field",
        _edit(lambda h: h[A].pop("dtype")),
        LIMIT,
        "bad_header",
        A,
        [A, "'dtype'"],
    ),
    ("entry_extra_field", _edit(_set(A, "x", 1)), LIMIT, "bad_header", A, [A, "'x'"]),
    ("unknown_dtype", _edit(_set(A, "dtype", "F4")), LIMIT, "bad_header", A, [A, "'F4'"]),
    ("negative_dim", _edit(_set(A, "shape", [-4, 16])), LIMIT, "bad_header", A, [A, "-4"]),
    (
        "metadata_not_str_map",
        _edit(lambda h: h.__setitem__("__metadata__", {"format": 1})),
        LIMIT,
        "bad_metadata",
        "__metadata__",
        ["__metadata__", "'format': 1"],
    ),
    (
        "offsets_out_of_range",
        _edit(_set(A, "data_offsets", [0, 10**9])),
        LIMIT,
        "bad_offsets",
        A,
        [A, "1000000000", "needs 256"],
    ),
    (
        "offsets_past_end",
        _edit(lambda h: h[B].__setitem__("data_offsets", [512, 768])),
        LIMIT,
        "bad_offsets",
        B,
        [B, "[512, 768]", "512-byte data section"],
    ),
    (
        "offsets_reversed",
        _edit(_set(A, "data_offsets", [256, 0])),
        LIMIT,
        "bad_offsets",
        A,
        [A, "[256, 0]"],
    ),
    (
        "offsets_overlap",
        _edit(lambda h: h[B].__setitem__("data_offsets", list(h[A]["data_offsets"]))),
        LIMIT,
        "bad_offsets",
        B,
        [B, "overlaps"],
    ),
    ("trailing_bytes", _edit(lambda h: None, b"\0" * 8), LIMIT, "bad_offsets", None, ["520"]),
    (
        "shape_not_matching_bytes",
        _edit(_set(A, "shape", [4, 8])),
        LIMIT,
        "bad_offsets",
        A,
        [A, "(4, 8)", "needs 128"],
    ),
    ("missing_tensor", update_bytes({A: _state()[A]}), LIMIT, "missing_key", B, [B, "missing"]),
    (
        "unexpected_tensor",
        update_bytes(_state(**{"evil.lora_A.weight": torch.zeros(2)})),
        LIMIT,
        "unexpected_key",
        "evil.lora_A.weight",
        ["'evil.lora_A.weight'"],
    ),
    (
        "wrong_shape",
        update_bytes(_state(**{A: torch.zeros(8, 16)})),
        LIMIT,
        "shape_mismatch",
        A,
        [A, "(8, 16)", "expected (4, 16)"],
    ),
    (
        "wrong_dtype_float16",
        update_bytes(_state(torch.float16)),
        LIMIT,
        "dtype_mismatch",
        A,
        [A, "F16", "expected F32"],
    ),
    (
        "wrong_dtype_int64",
        update_bytes(_state(torch.int64)),
        LIMIT,
        "dtype_mismatch",
        A,
        [A, "I64", "int64"],
    ),
    (
        "nan",
        update_bytes(_state(**{B: torch.full((16, 4), float("nan"))})),
        LIMIT,
        "non_finite",
        B,
        [B, "nan"],
    ),
    (
        "pos_inf",
        update_bytes(_state(**{A: torch.zeros(4, 16).index_fill_(1, torch.tensor([3]), INF)})),
        LIMIT,
        "non_finite",
        A,
        [A, "inf"],
    ),
    (
        "neg_inf",
        update_bytes(_state(**{B: torch.zeros(16, 4).fill_(float("-inf"))})),
        LIMIT,
        "non_finite",
        B,
        [B, "-inf"],
    ),
]


@pytest.mark.parametrize(
    ("data", "max_bytes", "reason", "key", "fragments"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_update_is_rejected(
    data: bytes, max_bytes: int, reason: str, key: str | None, fragments: list[str]
) -> None:
    with pytest.raises(UpdateRejectedError) as info:
        load_update_bytes(data, SPEC, max_bytes=max_bytes)

    assert info.value.reason == reason
    assert info.value.key == key
    message = str(info.value)
    assert message.startswith("update rejected: ")
    for fragment in fragments:
        assert fragment in message


def test_valid_update_loads_exactly() -> None:
    state = _state()

    loaded = load_update_bytes(update_bytes(state), SPEC, max_bytes=LIMIT)

    assert sorted(loaded) == [A, B]
    for name in state:
        assert loaded[name].dtype == torch.float32
        assert torch.equal(loaded[name], state[name])


def test_non_contiguous_and_metadata_free_updates_load() -> None:
    from safetensors.torch import save

    state = {A: torch.randn(16, 4).t(), B: torch.randn(4, 16).t()}  # transposed views
    plain = save({k: v.contiguous() for k, v in state.items()})  # no __metadata__

    assert torch.equal(load_update_bytes(update_bytes(state), SPEC, max_bytes=LIMIT)[A], state[A])
    assert torch.equal(load_update_bytes(plain, SPEC, max_bytes=LIMIT)[B], state[B])


# ------------------------------------------------------------------ pickle is never unpickled


class _Armed:
    """Unpickling this creates ``marker``: proof that a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _torch_zip(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save({A: torch.zeros(4, 16), "payload": obj}, buf)
    return buf.getvalue()


def _torch_legacy(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save({"payload": obj}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _unpickle_torch(data: bytes) -> None:
    torch.load(io.BytesIO(data), weights_only=False)


PICKLES = [
    ("torch_save_zip", _torch_zip, _unpickle_torch),
    ("torch_save_legacy", _torch_legacy, _unpickle_torch),
    ("pickle_protocol_0", lambda o: pickle.dumps(o, protocol=0), pickle.loads),
    ("pickle_protocol_2", lambda o: pickle.dumps(o, protocol=2), pickle.loads),
    ("pickle_protocol_5", lambda o: pickle.dumps(o, protocol=5), pickle.loads),
]


@pytest.mark.parametrize(
    ("build", "unpickle"), [p[1:] for p in PICKLES], ids=[p[0] for p in PICKLES]
)
def test_pickle_is_rejected_without_being_unpickled(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    build: Callable[[object], bytes],
    unpickle: Callable[[bytes], object],
) -> None:
    # The payload is armed: unpickling it really does create the marker file.
    probe = tmp_path / "probe"
    unpickle(build(_Armed(probe)))
    assert probe.exists()

    marker = tmp_path / "marker"
    data = build(_Armed(marker))
    path = tmp_path / SAFETENSORS_WEIGHTS_NAME
    path.write_bytes(data)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("loader called an unpickler")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)

    for load in (
        lambda: load_update_bytes(data, SPEC, max_bytes=LIMIT),
        lambda: load_update_file(path, SPEC, max_bytes=LIMIT),
    ):
        with pytest.raises(UpdateRejectedError) as info:
            load()
        assert info.value.reason == "not_safetensors"
        assert "not a safetensors file" in str(info.value)
    assert not marker.exists()


# ------------------------------------------------------------------ files and folders


def test_oversized_file_is_rejected_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / SAFETENSORS_WEIGHTS_NAME
    path.write_bytes(VALID)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("oversized file was opened")

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(UpdateRejectedError) as info:
        load_update_file(path, SPEC, max_bytes=len(VALID) - 1)

    assert info.value.reason == "too_large"
    assert info.value.key == SAFETENSORS_WEIGHTS_NAME
    assert f"is {len(VALID)} bytes" in str(info.value)


def test_update_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "u.safetensors"
    path.write_bytes(VALID)

    loaded = load_update_file(path, SPEC, max_bytes=LIMIT)

    assert torch.equal(loaded[B], _state()[B])


def _folder(tmp_path: Path, config: object = CONFIG, weights: bytes = VALID) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    (folder / SAFETENSORS_WEIGHTS_NAME).write_bytes(weights)
    text = config if isinstance(config, str) else json.dumps(config)
    (folder / CONFIG_NAME).write_text(text)
    return folder


_DROP = object()  # marks a key _config removes


def _config(**changes: object) -> dict:
    config = dict(CONFIG)
    for key, value in changes.items():
        if value is _DROP:
            del config[key]
        else:
            config[key] = value
    return config

# id, config (dict or raw text), reason, key, fragments
BAD_CONFIGS = [
    ("not_json", "{peft_type: LORA", "bad_config", CONFIG_NAME, [CONFIG_NAME, "not valid JSON"]),
    ("empty_file", "", "bad_config", CONFIG_NAME, [CONFIG_NAME]),
    ("not_object", "[1, 2]", "bad_config", CONFIG_NAME, [CONFIG_NAME, "list"]),
    ("duplicate_key", '{"r": 4, "r": 8}', "duplicate_key", "r", ["'r'"]),
    (
        "wrong_peft_type",
        _config(peft_type="PREFIX_TUNING"),
        "bad_config",
        "peft_type",
        ["'PREFIX_TUNING'"],
    ),
    ("no_peft_type", _config(peft_type=_DROP), "bad_config", "peft_type", ["None"]),
    ("r_mismatch", _config(r=8), "bad_config", "r", [A, "rank 4", "r=8"]),
    ("r_string", _config(r="4"), "bad_config", "r", ["'4'"]),
    ("r_bool", _config(r=True), "bad_config", "r", ["True"]),
    ("r_zero", _config(r=0), "bad_config", "r", ["0"]),
    ("alpha_string", _config(lora_alpha="8"), "bad_config", "lora_alpha", ["'8'"]),
    ("alpha_missing", _config(lora_alpha=_DROP), "bad_config", "lora_alpha", ["None"]),
    ("targets_int", _config(target_modules=3), "bad_config", "target_modules", ["3"]),
    ("targets_mixed", _config(target_modules=["q_proj", 1]), "bad_config", "target_modules", ["1"]),
    (
        "rank_pattern_bad",
        _config(rank_pattern={"q_proj": -1}),
        "bad_config",
        "rank_pattern",
        ["-1"],
    ),
    (
        "rank_pattern_other_rank",
        _config(r=8, rank_pattern={"v_proj": 2}),
        "bad_config",
        "r",
        [A, "rank 4", "[2, 8]"],
    ),
]


@pytest.mark.parametrize(
    ("config", "reason", "key", "fragments"),
    [c[1:] for c in BAD_CONFIGS],
    ids=[c[0] for c in BAD_CONFIGS],
)
def test_bad_adapter_config_is_rejected(
    tmp_path: Path, config: object, reason: str, key: str, fragments: list[str]
) -> None:
    folder = _folder(tmp_path, config)

    with pytest.raises(UpdateRejectedError) as info:
        load_adapter_folder(folder, SPEC, max_bytes=LIMIT)

    assert info.value.reason == reason
    assert info.value.key == key
    for fragment in fragments:
        assert fragment in str(info.value)


def test_rank_pattern_admits_its_ranks(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _config(r=8, rank_pattern={"q_proj": 4}))

    tensors, config = load_adapter_folder(folder, SPEC, max_bytes=LIMIT)

    assert config["rank_pattern"] == {"q_proj": 4}
    assert sorted(tensors) == [A, B]


@pytest.mark.parametrize("member", [CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME])
def test_missing_file_in_folder_is_rejected(tmp_path: Path, member: str) -> None:
    folder = _folder(tmp_path)
    (folder / member).unlink()

    with pytest.raises(UpdateRejectedError) as info:
        load_adapter_folder(folder, SPEC, max_bytes=LIMIT)

    assert info.value.reason == "missing_file"
    assert info.value.key == member
    assert member in str(info.value)


def test_missing_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UpdateRejectedError) as info:
        load_adapter_folder(tmp_path / "nowhere", SPEC, max_bytes=LIMIT)

    assert info.value.reason == "missing_file"
    assert "nowhere" in str(info.value)


def test_oversized_config_is_rejected(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _config(padding="x" * 2000))

    with pytest.raises(UpdateRejectedError) as info:
        load_adapter_folder(folder, SPEC, max_bytes=LIMIT, max_config_bytes=1000)

    assert info.value.reason == "too_large"
    assert info.value.key == CONFIG_NAME


def test_folder_with_bad_weights_reports_the_weights_reason(tmp_path: Path) -> None:
    folder = _folder(tmp_path, weights=update_bytes(_state(torch.float16)))

    with pytest.raises(UpdateRejectedError) as info:
        load_adapter_folder(folder, SPEC, max_bytes=LIMIT)

    assert info.value.reason == "dtype_mismatch"
    assert info.value.key == A


def test_save_adapter_refuses_a_config_the_loader_would_reject(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rank 4"):
        save_adapter(tmp_path / "a", _state(), _config(r=8))

    assert not (tmp_path / "a").exists()


def test_save_adapter_writes_sorted_json_and_the_uploaded_bytes(tmp_path: Path) -> None:
    state = _state()
    config = _config(target_modules={"v_proj", "q_proj"})

    folder = save_adapter(tmp_path / "a", state, config)

    weights = (folder / SAFETENSORS_WEIGHTS_NAME).read_bytes()
    assert weights == update_bytes(state)
    assert sha256_hex(weights) == hashlib.sha256(weights).hexdigest()
    text = (folder / CONFIG_NAME).read_text()
    assert json.loads(text)["target_modules"] == ["q_proj", "v_proj"]
    assert list(json.loads(text)) == sorted(json.loads(text))
    tensors, loaded_config = load_adapter_folder(folder, SPEC, max_bytes=LIMIT)
    assert loaded_config["r"] == 4
    assert torch.equal(tensors[A], state[A])


# ------------------------------------------------------------------ AdapterSpec


def test_spec_digest_is_sha256_of_canonical_json() -> None:
    spec = AdapterSpec({"b": (2,), "a": [1, 3]})

    expected = hashlib.sha256(b'{"dtype":"float32","shapes":{"a":[1,3],"b":[2]}}').hexdigest()

    assert spec.digest() == expected
    assert AdapterSpec({"a": (1, 3), "b": (2,)}) == spec
    assert hash(AdapterSpec({"a": (1, 3), "b": (2,)})) == hash(spec)
    assert AdapterSpec({"a": (1, 3), "b": (2,)}, torch.float16).digest() != expected
    assert spec.nbytes == (3 + 2) * 4


def test_spec_is_frozen_and_validated() -> None:
    shapes = {A: (4, 16)}
    spec = AdapterSpec(shapes)
    shapes[B] = (16, 4)  # the caller's dict changing later must not change the spec

    assert list(spec.shapes) == [A]
    with pytest.raises(TypeError):
        spec.shapes[B] = (1,)  # type: ignore[index]
    with pytest.raises(ConfigError):
        AdapterSpec({})
    with pytest.raises(ConfigError):
        AdapterSpec({A: (-1, 4)})
    with pytest.raises(ConfigError):
        AdapterSpec.from_state_dict({A: torch.zeros(1), B: torch.zeros(1, dtype=torch.float16)})


# ------------------------------------------------------------------ real peft round trip


def test_file_names_are_peft_constants() -> None:
    from peft.utils import constants

    assert SAFETENSORS_WEIGHTS_NAME == constants.SAFETENSORS_WEIGHTS_NAME
    assert CONFIG_NAME == constants.CONFIG_NAME


def _tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(config).eval()


def test_peft_round_trip(tmp_path: Path) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict

    base = _tiny_llama()
    fresh_base = copy.deepcopy(base)
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)  # peft initializes B to zero: make the adapter matter
    model.eval()
    state = get_peft_model_state_dict(model)
    spec = AdapterSpec.from_model(model)
    input_ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
        plain = fresh_base(input_ids=input_ids).logits

    folder = save_adapter(tmp_path / "v1", state, model.peft_config["default"].to_dict())
    reloaded = PeftModel.from_pretrained(fresh_base, folder).eval()
    tensors, config = load_adapter_folder(folder, spec, max_bytes=LIMIT)
    with torch.no_grad():
        got = reloaded(input_ids=input_ids).logits

    assert set(spec.shapes) == set(state)
    assert A.replace("q_proj", "v_proj") in spec.shapes
    assert spec.shapes[A] == (4, 16)
    assert not torch.allclose(expected, plain)  # the adapter changes the output...
    torch.testing.assert_close(got, expected, rtol=0, atol=0)  # ...and survives the trip
    assert sorted(tensors) == sorted(state)
    for name, tensor in state.items():
        assert torch.equal(tensors[name], tensor)
    assert config["peft_type"] == "LORA"
    assert config["r"] == 4
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]

    # peft's own writer produces a folder the strict loader accepts too.
    model.save_pretrained(tmp_path / "peft_native")
    native, _ = load_adapter_folder(tmp_path / "peft_native", spec, max_bytes=LIMIT)
    for name, tensor in state.items():
        assert torch.equal(native[name], tensor)
