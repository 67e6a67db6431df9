"""ASV embeddings of a frozen encoder, computed once per unique sequence (``--freeze-base``).

Keyed by the nucleotide sequence, so a second table — or the validation samples — reuse every
embedding already computed. The embeddings live in one growing tensor on the encoder's device;
a batch gathers its rows instead of running the ASV encoder.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from aam_core.data.batching import Batch
from aam_core.model.asv_encoder import ASVEncoder


class EncoderCache:
    def __init__(self, encoder: ASVEncoder):
        self.encoder = encoder
        self.rows: dict[str, int] = {}
        self.table: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @torch.no_grad()
    def _add(self, sequences: list[str], tokens: torch.Tensor) -> None:
        device = next(self.encoder.parameters()).device
        was_training = self.encoder.training
        self.encoder.eval()
        new = self.encoder(tokens.to(device)).float()
        self.encoder.train(was_training)
        start = len(self.rows)
        self.table = new if self.table is None else torch.cat([self.table, new])
        for offset, seq in enumerate(sequences):
            self.rows[seq] = start + offset

    def attach(self, batch: Batch, sequences: np.ndarray) -> Batch:
        """``batch`` with ``asv_embeddings [U, D]`` from the cache (padding rows zero)."""
        names = [str(s) for s in sequences[batch.features]]
        missing = [i for i, s in enumerate(names) if s not in self.rows]
        if missing:
            index = torch.as_tensor(missing, dtype=torch.long, device=batch.asv_tokens.device)
            self._add([names[i] for i in missing], batch.asv_tokens.index_select(0, index))
        gather = torch.as_tensor([self.rows[s] for s in names], dtype=torch.long, device=self.table.device)
        embeddings = self.table.new_zeros((batch.asv_tokens.shape[0], self.table.shape[1]))
        embeddings[: len(names)] = self.table.index_select(0, gather)
        return attrs.evolve(batch, asv_embeddings=embeddings.to(batch.asv_tokens.device))
