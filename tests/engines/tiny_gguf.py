"""Write a tiny llama-architecture GGUF model with random weights (about 100 KB).

For the engine tests (``make test-engines``): llama.cpp's server loads it in milliseconds and
answers with gibberish, while tokenization, sampling, streaming, usage counts, context limits
and the OpenAI API around them are the real engine's. Nothing is downloaded; the weights are
seeded, so every run writes the same file.

Usage: ``python tests/engines/tiny_gguf.py OUT.gguf`` (needs ``gguf`` and ``numpy``).
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["CONTEXT", "write_tiny_gguf"]

#: the model's context length in tokens (a longer prompt is the engine's context error)
CONTEXT = 256
_DIM, _LAYERS, _HEADS, _FFN = 32, 2, 4, 64


def _vocabulary() -> list[str]:
    """SentencePiece-style: unknown, begin, end, 256 byte tokens, then a word piece a letter."""
    return [
        "<unk>",
        "<s>",
        "</s>",
        *(f"<0x{b:02X}>" for b in range(256)),
        *("\u2581" + c for c in "abcdefghijklmnopqrstuvwxyz"),
    ]


def write_tiny_gguf(out: Path, seed: int = 0) -> Path:
    """Write the model to ``out`` and return it."""
    import gguf  # the engine tests' own dependencies (make test-engines installs them)
    import numpy as np

    tokens = _vocabulary()
    size = len(tokens)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("tiny-random")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(_DIM)
    writer.add_block_count(_LAYERS)
    writer.add_feed_forward_length(_FFN)
    writer.add_head_count(_HEADS)
    writer.add_head_count_kv(_HEADS)
    writer.add_rope_dimension_count(_DIM // _HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    # Mean pooling, as embedding models declare: with embeddings on, /v1/embeddings answers one
    # vector per input (without it, llama.cpp pools nothing and answers a vector per token, a
    # list of lists no OpenAI client expects). Generation does not use it.
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(0)  # all tensors f32
    writer.add_tokenizer_model("llama")
    writer.add_token_list([t.encode() for t in tokens])
    writer.add_token_scores([0.0] * size)
    # types: 2 unknown, 3 control, 6 byte, 1 normal
    writer.add_token_types([2, 3, 3] + [6] * 256 + [1] * (size - 259))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    rng = np.random.default_rng(seed)

    def random(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    def ones(name: str) -> None:
        writer.add_tensor(name, np.ones(_DIM, np.float32))

    random("token_embd.weight", size, _DIM)
    ones("output_norm.weight")
    random("output.weight", size, _DIM)
    for i in range(_LAYERS):
        ones(f"blk.{i}.attn_norm.weight")
        ones(f"blk.{i}.ffn_norm.weight")
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            random(f"blk.{i}.{part}.weight", _DIM, _DIM)
        random(f"blk.{i}.ffn_gate.weight", _FFN, _DIM)
        random(f"blk.{i}.ffn_up.weight", _FFN, _DIM)
        random(f"blk.{i}.ffn_down.weight", _DIM, _FFN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print("wrote", write_tiny_gguf(Path(sys.argv[1])))
