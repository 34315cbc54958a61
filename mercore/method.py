"""The ``Method`` a plugin hands to the core: its config, input streams, model and trainer stages.

It lives apart from :mod:`mercore.interfaces` because its default stage is a core trainer, and the
trainers import the interfaces they implement: interfaces <- training <- method, no circle.
Nothing here imports torch at import time (loading the registry must stay light).
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from .interfaces import FeatureRequest, Trainer

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from .settings import Settings


class Method(abc.ABC):
    """A published method as a plugin hands it over.

    ``default_config`` is the paper's setup and ``profiles`` hold named overrides (``quick`` for
    CPU runs); both come from the ``config.yaml`` of the package named by ``config_package``, the
    only source of defaults. The core merges config layers, then asks the method for its input
    streams, its model and its trainer stages; only the model has no default.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    variants: ClassVar[Mapping[str, str]] = {}
    default_variant: ClassVar[str | None] = None
    #: input kinds the method can run on: "clips" (raw frames) and/or "flow-release"
    inputs: ClassVar[tuple[str, ...]] = ("clips",)
    #: the package whose ``config.yaml`` holds the defaults, ``variants`` and ``profiles``
    config_package: ClassVar[str | None] = None
    #: config sections (dotted paths) read by a core trainer, by kind (``supervised``, ``triplet``,
    #: ``episodic``): each starts from that trainer's defaults (``mercore/configs/trainers.yaml``),
    #: so the resolved config holds every value the run uses
    trainer_sections: ClassVar[Mapping[str, str]] = {"train": "supervised"}

    def config_file(self) -> dict[str, Any]:
        """``config.yaml`` of ``config_package``, parsed as the core parses every config."""
        if not self.config_package:
            raise TypeError(f"{type(self).__name__}: set `config_package` (the package holding config.yaml) "
                            f"or override default_config()")
        from importlib import resources

        from .config import yaml_load

        return yaml_load(resources.files(self.config_package).joinpath("config.yaml").read_text()) or {}

    def default_config(self) -> dict[str, Any]:
        """The paper's hyperparameters, as a nested dict; ``variant`` overrides live under ``variants``."""
        config = self.config_file()
        config.pop("profiles", None)
        return config

    def profiles(self) -> dict[str, dict[str, Any]]:
        """Named config overrides, e.g. ``{"quick": {...}}`` for a CPU-sized run."""
        return self.config_file().get("profiles") or {} if self.config_package else {}

    def config_class(self) -> type[Settings] | None:
        """The method's own sections (every top-level section but the core's and ``meta``) as one
        :class:`~mercore.settings.Settings` dataclass with a field per section (``section = ""``),
        or None. When declared, the core checks them once before any work and :meth:`settings`
        hands them over typed. Imported here, not at class level, as a model's settings module may
        import torch and the plugin must load without it."""
        return None

    def settings(self, config: Mapping[str, Any]) -> Any:
        """The method's sections of ``config`` as its :meth:`config_class`: a ConfigError names a
        bad key, or a section of the config the class does not declare."""
        from .core_settings import CoreSettings

        cls = self.config_class()
        if cls is None:
            raise TypeError(f"method {self.name!r} declares no config_class; read its sections from the config")
        core = set(CoreSettings.keys()) | {"meta"}
        return cls.from_config({k: v for k, v in config.items() if k not in core})

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        """Input streams by the names the model's ``forward`` reads from its batch dict: by default
        those the ``features`` section declares (:mod:`mercore.streams`), with ``features.size`` and,
        for clips, ``features.align`` added by the core. Override it only for logic the YAML cannot
        declare (streams chosen by the model's settings, a selector of the method's own)."""
        from .streams import declared_requests

        return declared_requests(config["features"])

    @abc.abstractmethod
    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        """A fresh model; ``forward(batch: dict[str, Tensor]) -> logits (B, num_classes)``."""

    def stages(self, config: Mapping[str, Any]) -> list[Trainer]:
        """Trainer stages run in order on every fold; by default one supervised stage set by the
        config's ``train`` section, with this method's :meth:`augment`."""
        from .training.supervised import SupervisedTrainer

        return [SupervisedTrainer.from_config(config["train"], augment=self.augment(config))]

    def augment(self, config: Mapping[str, Any]) -> Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None:
        """Optional training-time augmentation of a batch (applied by trainers that accept it)."""
        return None
