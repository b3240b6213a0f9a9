"""The options of each backend, typed and validated once (node parameters ``pytorch.*`` and
``onnxruntime.*``, command-line flags ``--pytorch.*`` and ``--onnxruntime.*``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vltseg_ros.config.options import option
from vltseg_ros.engines.providers import parse_providers
from vltseg_ros.errors import ConfigError


@dataclass(frozen=True)
class TorchOptions:
    """Options of the pytorch backend."""

    channels_last: bool = option(
        False, "Convolutions in channels-last memory format (may help on GPUs; no gain on CPUs)."
    )
    compile: bool = option(
        False,
        "torch.compile the model: compiled once, during activation's warm-up or the first "
        "call (tens of seconds to minutes); every pass is padded to batch_size.",
    )


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """Options of the onnxruntime backend.

    Raises:
        ConfigError: an unknown or repeated execution provider.
    """

    providers: str = option(
        "",
        "Execution providers in priority order, comma-separated (tensorrt, cuda, cpu); empty "
        "= every available one for the device.",
    )
    cache_dir: str = option(
        "",
        "TensorRT engine and timing cache folder (the first build takes minutes, later starts "
        "reuse it); empty = no cache.",
    )
    threads: int = option(
        0, "CPU threads per inference; 0 = ONNX Runtime's default (all cores).", range=(0, 1024)
    )

    def __post_init__(self) -> None:
        try:
            parse_providers(self.providers)
        except ConfigError as exc:
            raise ConfigError(f"onnxruntime.providers: {exc}") from None

    @property
    def provider_names(self) -> tuple[str, ...]:
        """ONNX Runtime's names of the requested providers; () = automatic."""
        return parse_providers(self.providers)

    @property
    def cache_path(self) -> Path | None:
        """The TensorRT cache folder (``~`` expanded), or None."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else None


EngineOptions = TorchOptions | OnnxRuntimeOptions
