"""What the interpretability tools hold in `ToolContext.sae`: a sae-lens SAE, the layer it reads, and (when one
was built) its feature index. Works for an organism's own SAE and for any sae-lens SAE of a Hugging Face model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from target_models.interp.feature_index import FeatureIndex, directions, index_dir
from target_models.interp.sae import sae_dir
from target_models.targets.residual import layer_from_hook_name, n_layers

if TYPE_CHECKING:
    from target_models.loading.organism import Organism


class SAELoadError(RuntimeError):
    pass


@dataclass
class SAEBundle:
    sae: Any  # a sae_lens.SAE, fp32, eval mode
    layer: int  # output of this decoder block (blocks.L.hook_resid_post)
    index: FeatureIndex | None = None
    source: str = ""
    _dirs: torch.Tensor | None = field(default=None, repr=False)
    _unit: torch.Tensor | None = field(default=None, repr=False)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)

    @classmethod
    def load(cls, path: str | Path, *, layer: int | None = None, index: bool | str | Path = True) -> SAEBundle:
        """A sae-lens SAE saved on disk (`SAE.save_model` layout). `layer` overrides the one read from the SAE's
        hook name; `index` may name an index folder (default: `index/` next to the SAE, if there is one)."""
        from sae_lens import SAE

        path = Path(path)
        if not (path / "cfg.json").exists():
            raise SAELoadError(f"{path}: no sae-lens SAE here (cfg.json missing)")
        sae = SAE.load_from_disk(path, dtype="float32")
        return cls._wrap(sae, layer, path / "index" if index is True else index, str(path))

    @classmethod
    def from_pretrained(cls, release: str, sae_id: str, *, layer: int | None = None,
                        index: str | Path | None = None) -> SAEBundle:
        """A sae-lens release (needs the weights in the Hugging Face cache, or network)."""
        from sae_lens import SAE

        sae = SAE.from_pretrained(release, sae_id, device="cpu")
        sae = sae.to(torch.float32)
        return cls._wrap(sae, layer, index, f"{release}/{sae_id}")

    @classmethod
    def for_organism(cls, org: Organism) -> SAEBundle:
        d = sae_dir(org.out)
        if not (d / "cfg.json").exists():
            raise SAELoadError(f"organism {org.spec.name!r} has no SAE at {d}; build it with `sleuth organism build`")
        return cls.load(d, index=index_dir(org.out))

    @classmethod
    def lazy_for_organism(cls, org: Organism) -> LazySAEBundle | None:
        """For a ToolContext: the organism's SAE, loaded on first use (importing sae-lens alone takes seconds,
        which tools that never touch the SAE should not pay); None when the organism has no SAE."""
        if not (sae_dir(org.out) / "cfg.json").exists():
            return None
        return LazySAEBundle(lambda: cls.for_organism(org))

    @classmethod
    def _wrap(cls, sae: Any, layer: int | None, index: bool | str | Path | None, source: str) -> SAEBundle:
        sae.eval()
        if layer is None:
            layer = layer_from_hook_name(sae.cfg.metadata.hook_name)
        idx = None
        if index not in (None, False) and (Path(index) / "meta.json").exists():
            idx = FeatureIndex(Path(index))
            if len(idx) != sae.cfg.d_sae:
                raise SAELoadError(f"index at {index} has {len(idx)} features, the SAE {sae.cfg.d_sae}")
        return cls(sae=sae, layer=layer, index=idx, source=source)

    def check(self, model: Any) -> None:
        """Refuse a model whose residual stream the SAE cannot read."""
        d = model.config.hidden_size
        if d != self.d_in:
            raise SAELoadError(f"the SAE reads {self.d_in}-dim activations, the model's residual stream is {d}-dim")
        if not 0 <= self.layer < n_layers(model):
            raise SAELoadError(f"the SAE reads layer {self.layer}, the model has {n_layers(model)} layers")

    @torch.inference_mode()
    def encode(self, resid: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(resid.float())

    def directions(self) -> torch.Tensor:
        """Residual-stream direction of one unit of each feature, [d_sae, d_model] (cached)."""
        if self._dirs is None:
            self._dirs = directions(self.sae)
        return self._dirs

    def unit_directions(self) -> torch.Tensor:
        if self._unit is None:
            d = self.directions()
            self._unit = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        return self._unit


class LazySAEBundle:
    """Stands in for an SAEBundle and loads it at the first attribute access."""

    def __init__(self, load: Callable[[], SAEBundle]):
        self._load = load
        self._bundle: SAEBundle | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_load", "_bundle"):  # copy/pickle probes, or before __init__ ran
            raise AttributeError(name)
        if self._bundle is None:
            self._bundle = self._load()
        return getattr(self._bundle, name)
