"""Counting tokens a provider did not report.

tiktoken fetches its BPE files from the internet on first use; on a machine without
access it cannot. A local ``.tiktoken`` file (``ORCHESTRION_LLM__TIKTOKEN_FILE``) and the
optional ``tiktoken`` package give exact counts for OpenAI encodings; otherwise counts
are estimated at four bytes of UTF-8 per token (the usual English average) and the
step's usage says ``"estimated": true``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("orchestrion.engine.llm")
_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


class TokenCounter:
    """Counts with a local tiktoken encoding when configured, else estimates."""

    def __init__(self, bpe_file: Path | None = None) -> None:
        self.encoding: Any = _load(str(bpe_file)) if bpe_file else None

    @property
    def exact(self) -> bool:
        """Whether counts come from a real encoding."""
        return self.encoding is not None

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        if not text:
            return 0
        if self.encoding is not None:
            return len(self.encoding.encode(text, disallowed_special=()))
        return max(1, (len(text.encode()) + 3) // 4)


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Any:
    try:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
    except ImportError:
        logger.warning("tiktoken is not installed: token counts are estimated")
        return None
    try:
        ranks = load_tiktoken_bpe(path)
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s (%s): token counts are estimated", path, exc)
        return None
    return tiktoken.Encoding(
        name=Path(path).stem, pat_str=_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
