"""A tiny language-conditioned policy the tests build themselves: a word-level tokenizer
(``tokenizers``) and an ONNX graph whose actions depend on the instruction's token ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from reflex.hardware.yam_layout import yam_bimanual_layout

WORDS = ["pick", "up", "the", "red", "cube", "open", "drawer", "wave", "both", "arms"]
MAX_LEN = 8
CHUNK = 10


def build_text_export(out: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    out.mkdir(parents=True, exist_ok=True)
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(out / "tokenizer.json"))

    layout = yam_bimanual_layout()
    dim = layout.dim
    rng = np.random.default_rng(3)
    table = (rng.standard_normal((len(vocab), dim)) * 0.05).astype(np.float32)
    table[0] = 0.0
    consts = {
        "table": table,
        "steps": ((np.arange(CHUNK, dtype=np.float32) + 1) * 0.1).reshape(1, CHUNK, 1),
        "axis1": np.array([1], dtype=np.int64),
        "axis2": np.array([2], dtype=np.int64),
    }
    node = helper.make_node
    nodes = [
        node("Gather", ["table", "ids"], ["emb"]),  # (B, L, dim)
        node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),  # (B, L, 1)
        node("Mul", ["emb", "mask3"], ["masked"]),
        node("ReduceSum", ["masked", "axis1"], ["direction"], keepdims=0),  # (B, dim)
        node("Unsqueeze", ["direction", "axis1"], ["d3"]),
        node("Unsqueeze", ["state", "axis1"], ["s3"]),
        node("Mul", ["d3", "steps"], ["travel"]),
        node("Add", ["s3", "travel"], ["actions"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_text_policy",
        inputs=[
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", dim]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", MAX_LEN]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", MAX_LEN]),
        ],
        outputs=[helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", CHUNK, dim])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in sorted(consts.items())],
    )
    model = helper.make_model(graph, producer_name="reflex-test", opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (out / "model.onnx").write_bytes(model.SerializeToString())
    manifest = {
        "format_version": 2,
        "name": "tiny-text-policy",
        "state_dim": dim,
        "action_dim": dim,
        "chunk_length": CHUNK,
        "action_dt_s": 0.1,
        "state_names": list(layout.names),
        "action_names": list(layout.names),
        "inputs": [
            {"name": "state", "role": "state"},
            {"name": "ids", "role": "text", "dtype": "int64"},
            {"name": "mask", "role": "text_mask", "dtype": "int64"},
        ],
        "tokenizer": {"file": "tokenizer.json", "max_length": MAX_LEN, "pad_id": 0},
    }
    (out / "reflex_config.json").write_text(json.dumps(manifest, indent=2))
    return out
