"""What the transformer reads of a record: its code gadget, marked with the taint analysis' roles (the
default) or not, or its whole text, condensed.

Pure text (no torch): the training loaders (`data.CodeDataset`), inference and the flags
(`--text-input`) all take the text from here, so a model reads at serving time what it was
trained on.
"""

from __future__ import annotations

from collections.abc import Sequence


def code_for_tokens(code: str) -> str:
    """The text the transformer reads: imports, package lines and comment lines dropped, whitespace
    collapsed.

    Files open with imports and headers; with a fixed token budget (`--max-length`) those would push
    the function bodies, where flows into sinks are written, past the truncation point.
    """
    from streamguard.core.graphs.gadget import BOILERPLATE  # the same lines the gadgets leave out

    kept = [line.strip() for line in code.splitlines() if line.strip() and not BOILERPLATE.match(line)]
    return " ".join(" ".join(kept).split())


# What the transformer reads: "marked-gadget" (the statements that reach a sink, each line led by the
# taint analysis' markers, `streamguard.core.graphs.gadget`; the default), "gadget" (the same lines
# unmarked) or "code" (the whole text, `code_for_tokens`). Saved models name theirs; models saved
# before gadgets read the whole text.
TEXT_INPUTS = ("marked-gadget", "gadget", "code")
DEFAULT_TEXT_INPUT = "marked-gadget"


def transformer_text(code: str, language: str | None, text_input: str = DEFAULT_TEXT_INPUT) -> str:
    """The text the transformer reads for one record, by input kind (see `TEXT_INPUTS`).

    A code gadget keeps its lines apart with " ; " (line breaks would be collapsed by the
    byte-level tokenizer's whitespace handling anyway; the separator keeps statement boundaries).
    """
    if text_input == "code":
        return code_for_tokens(code)
    if text_input not in ("gadget", "marked-gadget"):
        raise ValueError(f"unknown transformer text input {text_input!r} (expected one of {TEXT_INPUTS})")
    from streamguard.core.graphs.gadget import code_gadget

    gadget = code_gadget(code, language or "python", markers=text_input == "marked-gadget")
    return " ; ".join(" ".join(line.split()) for line in gadget.text.split("\n"))


def drop_code_words(text: str, p: float, rng) -> str:
    """The text with each word of code dropped with probability `p` (training only, `--token-dropout`);
    the analysis markers (`gadget.MARKERS`) and the statement separators stay. A model trained this way
    cannot lean on any one code token and leans on the markers, which read the same in every language."""
    from streamguard.core.graphs.gadget import MARKERS

    if p <= 0:
        return text
    keep = frozenset(MARKERS) | {";"}
    return " ".join(w for w in text.split(" ") if w in keep or rng.random() >= p)


def attach_texts(samples: Sequence, text_input: str = DEFAULT_TEXT_INPUT) -> None:
    """Compute each usable sample's transformer text once (epochs rebuild their datasets)."""
    for s in samples:
        if s.error is None and s.code is not None:
            s.text = transformer_text(s.code, s.language, text_input)
