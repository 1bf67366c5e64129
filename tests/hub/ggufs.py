"""Tiny GGUF files written with the ``gguf`` package: valid headers and tensor data that
``chatterm.gguf_file.read_gguf`` accepts, small enough to pull in milliseconds (not runnable
models: the weights are zeros)."""

from __future__ import annotations

from pathlib import Path

# An escape sequence inside the template: `models show` must print it as text, not obey it.
TINY_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{# \x1b[2J #}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_LAYERS = 2
TINY_CONTEXT = 512
TINY_EMBD = 16
TINY_VOCAB = 80
Q4_K_M_FILE_TYPE = 15


def write_tiny_gguf(path: Path, *, split_max_tensors: int = 0) -> list[Path]:
    """Write a tiny llama-shaped GGUF at ``path`` (or ``…-0000i-of-0000n.gguf`` shards when
    ``split_max_tensors`` is set); returns the files written, first shard first."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    writer.add_name("Tiny Test Model")
    writer.add_block_count(TINY_LAYERS)
    writer.add_context_length(TINY_CONTEXT)
    writer.add_embedding_length(TINY_EMBD)
    writer.add_feed_forward_length(32)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(Q4_K_M_FILE_TYPE)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(TINY_VOCAB)])
    writer.add_chat_template(TINY_TEMPLATE)
    writer.add_tensor("token_embd.weight", np.zeros((TINY_VOCAB, TINY_EMBD), dtype=np.float32))
    for layer in range(TINY_LAYERS):
        for part in ("attn_q", "attn_k"):
            writer.add_tensor(
                f"blk.{layer}.{part}.weight", np.zeros((TINY_EMBD, TINY_EMBD), dtype=np.float32)
            )
    writer.add_tensor("output_norm.weight", np.ones((TINY_EMBD,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if not split_max_tensors:
        return [path]
    return sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))


# Parameters of the tiny model (all shards together).
TINY_PARAMETERS = TINY_VOCAB * TINY_EMBD + TINY_LAYERS * 2 * TINY_EMBD * TINY_EMBD + TINY_EMBD
