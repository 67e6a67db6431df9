"""``--pretrained-encoder``: the encoder of an ``aam pretrain`` checkpoint, loaded into a model.

The checkpoint must describe the same architecture (width, heads, layers, patch size, ``max_bp``):
a mismatch is one line naming the setting and both values, before anything is trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch

from aam_core.checkpoint import load_checkpoint
from aam_core.config import RunConfig, structure
from aam_core.errors import CheckpointError, ConfigError
from aam_core.model.aam import ENCODER_MODULES, AAMModel

#: (section, field, flag) of every setting the encoder's weights depend on.
ARCHITECTURE = (
    ("model", "embedding_dim", "--embedding-dim"),
    ("model", "attention_heads", "--attention-heads"),
    ("model", "n_asv_layers", "--asv-layers"),
    ("model", "attention_layers", "--attention-layers"),
    ("model", "patch_size", "--patch-size"),
    ("model", "feedforward_mult", "--feedforward-mult"),
    ("data", "max_bp", "--max-bp"),
)


@attrs.frozen
class PretrainedEncoder:
    path: Path
    state: dict[str, torch.Tensor] = attrs.field(repr=False)

    def load_into(self, model: AAMModel) -> None:
        """Copy the encoder weights; heads and conditioning keep their fresh initialisation."""
        own = dict(model.encoder_parameters())
        own.update({k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] in ENCODER_MODULES})
        missing = sorted(k for k in own if k not in self.state and not k.endswith("hidden_abundance"))
        if missing:
            raise CheckpointError(f"{self.path} lacks encoder weights the model needs (e.g. {missing[0]}).")
        usable = {k: v for k, v in self.state.items() if k in own}
        model.load_state_dict(usable, strict=False)


def _value(config: RunConfig, section: str, name: str) -> Any:
    return getattr(getattr(config, section), name)


def load_pretrained_encoder(config: RunConfig) -> PretrainedEncoder:
    """Read the checkpoint ``--pretrained-encoder`` names (once) and check its architecture."""
    path = Path(config.training.pretrained_encoder)
    payload = load_checkpoint(path, kind="pretrain")
    stored = structure(payload["config"], RunConfig, f"config stored in {path}")
    for section, name, flag in ARCHITECTURE:
        ours, theirs = _value(config, section, name), _value(stored, section, name)
        if ours != theirs:
            raise ConfigError(
                f"{flag} {ours} differs from the pretrained encoder's {theirs} ({path}); use the "
                "encoder's architecture (or pretrain again)."
            )
    state = {k: v for k, v in payload["model_state"].items() if k.split(".", 1)[0] in ENCODER_MODULES}
    return PretrainedEncoder(path=path, state=state)
