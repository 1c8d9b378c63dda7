"""PhysioLatent's model: the architecture of its video VAE and editor network, in one config.

The networks are `rppgedit.models.video_vae` (the frozen latent space) and
`rppgedit.models.fusion` (the latent editor and its conditioner); the editor that runs them is
`rppgedit.editors.physiolatent`, and `rppgedit.train` trains them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from rppgedit.models import fusion, video_vae


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the VAE and the editor network (stored with the checkpoints).

    Attributes:
      vae: sizes of the video VAE.
      width, depth, heads: fusion blocks (channels, count, attention heads).
      num_freqs: Fourier frequencies of the heart-rate embedding.
    """

    vae: video_vae.VAEConfig = video_vae.VAEConfig()
    width: int = 32
    depth: int = 2
    heads: int = 2
    num_freqs: int = 6

    def net(self) -> fusion.EditorNet:
        return fusion.EditorNet(
            latent_channels=self.vae.latent_channels,
            film_channels=self.vae.film_channels,
            width=self.width,
            depth=self.depth,
            heads=self.heads,
        )

    def conditioner(self) -> fusion.FourierConditioner:
        return fusion.FourierConditioner(self.num_freqs)

    def as_dict(self) -> dict[str, Any]:
        """JSON-shaped dict (tuples as lists), as stored in the checkpoint metadata."""
        return json.loads(json.dumps(dataclasses.asdict(self)))
