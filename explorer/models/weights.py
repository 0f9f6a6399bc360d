"""Weights: torchvision's pretrained ImageNet ResNets, and files a user hands in, loaded safely.

Pretrained weights are torchvision's ``IMAGENET1K_V1`` files (the ones that match the original
ResNets), downloaded once into the torch hub cache (``$TORCH_HOME/hub/checkpoints``, as
``torchvision.models.resnet50(weights=...)`` would) by our own downloader, which reports progress
and checks the sha256 prefix in the file's name. ``RESNET_EXPLORER_WEIGHTS_URL`` points the
download at a mirror (or a test server) that serves the same file names.

Every file is read with ``torch.load(..., weights_only=True)``: a pickle that would build arbitrary
objects (and so could run code) is refused before anything in it runs. Its keys and shapes are then
checked against the model built on the meta device (shapes, no memory), so a small crafted file
cannot make us build a model of absurd size: a 1.5 KB file whose ``fc.weight`` claims 50 million
classes would otherwise cost a 100 GB layer.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from explorer.download import Progress, check_reachable, fetch
from explorer.models.cost import meta_model
from explorer.models.registry import build_model

PRETRAINED_DEPTHS = (18, 34, 50, 101, 152)
MIRROR_ENV = "RESNET_EXPLORER_WEIGHTS_URL"
DOWNLOAD_TIMEOUT_SECONDS = 30.0
# The most classes a weights file may give its classifier: ImageNet-21k, the largest label set
# in common use, has 21,841; more is a damaged or crafted file.
MAX_CLASSES = 100_000
# The weights upload's cap in MB (Streamlit's MB: 2**20 bytes). torchvision's largest ResNet file,
# ResNet-152's, is about 230 MB; every other model here that Grad-CAM can explain is smaller. The
# app's server.maxUploadSize (.streamlit/config.toml) is this, the larger of its two caps.
MAX_WEIGHTS_UPLOAD_MB = 256


def pretrained_weights(name: str):
    """torchvision's weights enum entry (URL, file name, class names) for ``resnet18`` .. ``resnet152``."""
    from torchvision.models import get_weight

    match = re.fullmatch(r"resnet(\d+)", name)
    if not match or int(match.group(1)) not in PRETRAINED_DEPTHS:
        valid = ", ".join(f"resnet{depth}" for depth in PRETRAINED_DEPTHS)
        raise ValueError(f"no pretrained ImageNet weights for {name!r}; torchvision has them for {valid}")
    return get_weight(f"ResNet{match.group(1)}_Weights.IMAGENET1K_V1")


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, as torchvision ships them (no download)."""
    return list(pretrained_weights("resnet18").meta["categories"])


def cached_weights_path(name: str) -> Path:
    """Where the torch hub cache keeps (or will keep) ``name``'s pretrained file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(pretrained_weights(name).url).name


def weights_url(name: str) -> str:
    """Where ``name``'s pretrained file comes from: torchvision's address, or the mirror's."""
    mirror = os.environ.get(MIRROR_ENV)
    filename = cached_weights_path(name).name
    return f"{mirror.rstrip('/')}/{filename}" if mirror else pretrained_weights(name).url


def check_pretrained_obtainable(name: str, timeout: float = 3.0) -> None:
    """Refuse at once, in one sentence without paths, weights that are neither cached nor downloadable
    (offline): before a page shows a download that can only fail."""
    path = cached_weights_path(name)
    if path.exists():
        return
    check_reachable(weights_url(name), what=f"{name}'s ImageNet weights file", timeout=timeout,
                    if_offline=(f"upload torchvision's file {path.name} (downloaded on a machine that is online), "
                                f"or copy it into the server's torch hub cache (TORCH_HOME, folder checkpoints)"))


def download_pretrained(name: str, progress: Progress | None = None,
                        timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> Path:
    """The cached file of ``name``'s pretrained weights, downloaded first if it is not there."""
    destination = cached_weights_path(name)
    if destination.exists():
        return destination
    filename = destination.name
    url = weights_url(name)
    # torchvision names each file after the first hex digits of its sha256, as torch.hub checks.
    expected = torch.hub.HASH_REGEX.search(filename).group(1)
    destination.parent.mkdir(parents=True, exist_ok=True)
    return fetch(url, destination, what=f"the pretrained {name} weights", algorithm="sha256", expected=expected,
                 progress=progress, timeout=timeout,
                 if_offline=(f"this machine seems to be offline: download {filename} elsewhere and upload it "
                             f"(in the CLI: --weights PATH), or put it in {destination.parent}"))


def load_weights_file(source: str | os.PathLike | bytes | BinaryIO) -> dict[str, torch.Tensor]:
    """A state_dict from a file made by ``torch.save``, read with ``weights_only=True``.

    Accepts a bare state_dict or a checkpoint that holds one under ``state_dict`` or ``model``;
    ``module.`` prefixes (DataParallel) are dropped. Anything else raises ValueError with one line.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"weights file {str(path)!r} does not exist or is not a file")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read()
    if not data:
        raise ValueError("the weights file is empty")
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses any global it does not allow-list before building it: nothing ran.
        if "unsupported global" in str(error).lower():
            raise ValueError("refused: the weights file holds pickled Python objects other than tensors (unpickling "
                             "them could run code), so nothing in it was loaded or run; save a plain state_dict "
                             "with torch.save") from None
        if "weights only load failed" in str(error).lower():  # an opcode it does not read: other bytes
            raise ValueError("refused: not a PyTorch weights file (torch.save), or a pickle the safe loader does not "
                             "read; nothing in it was run") from None
        raise ValueError(f"not a PyTorch weights file (torch.save) or it is damaged: {_first_line(error)}") from None
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways on arbitrary bytes
        raise ValueError(f"not a PyTorch weights file (torch.save) or it is damaged: {_first_line(error)}") from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError("the weights file does not hold a state_dict (a dict of parameter names to tensors)")
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def check_state_dict(state_dict: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], model_name: str) -> None:
    """Raise ValueError (one line, naming a few keys) unless ``state_dict`` has exactly the keys and
    shapes of ``expected``, a model's state_dict (a meta one costs nothing)."""
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [f"{key} (file {tuple(state_dict[key].shape)}, model {tuple(tensor.shape)})"
                  for key, tensor in expected.items()
                  if key in state_dict and state_dict[key].shape != tensor.shape]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", mismatched)):
            if keys:
                shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        raise ValueError(f"the weights do not fit {model_name}: " + "; ".join(parts))
    odd = [key for key, tensor in state_dict.items()
           if tensor.layout != torch.strided or tensor.is_complex() or tensor.device.type == "meta"]
    if odd:
        raise ValueError(f"the weights do not fit {model_name}: not plain real-valued tensors (sparse, complex or "
                         f"without data): {', '.join(odd[:3])}")
    # A view with zero strides claims any shape with one stored number: a file that small must not
    # make us build a model whose size it does not pay for.
    hollow = [key for key, tensor in state_dict.items()
              if tensor.untyped_storage().nbytes() < tensor.numel() * tensor.element_size()]
    if hollow:
        raise ValueError(f"the weights do not fit {model_name}: fewer numbers stored than the shape needs (a "
                         f"broadcast view, not saved weights): {', '.join(hollow[:3])}")


def fit_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], model_name: str) -> None:
    """Load ``state_dict`` into ``model`` or raise ValueError naming the keys that do not fit."""
    check_state_dict(state_dict, model.state_dict(), model_name)
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError) as error:  # a dtype that cannot be copied in, say
        raise ValueError(f"the weights do not fit {model_name}: {_first_line(error)}") from None


def checked_model(name: str, state_dict: dict[str, torch.Tensor], **options) -> nn.Module:
    """``build_model(name, **options)`` with ``state_dict`` loaded, its keys and shapes checked first
    on the meta device, so that nothing is allocated for weights that do not fit."""
    check_state_dict(state_dict, meta_model(name, **options).state_dict(), name)
    model = build_model(name, **options)
    fit_state_dict(model, state_dict, name)
    return model


def num_classes_in(state_dict: dict[str, torch.Tensor], model_name: str | None = None) -> int | None:
    """The classifier's output size in a state_dict (its ``fc.weight`` rows), if it has one.

    With ``model_name``, a ``fc.weight`` that is not a (classes, features) matrix of that model
    with 1 to ``MAX_CLASSES`` classes is refused in one line naming the shape found and expected.
    """
    weight = state_dict.get("fc.weight")
    if weight is None:
        return None
    if model_name is None:
        return int(weight.shape[0]) if weight.ndim == 2 else None
    fc = getattr(meta_model(model_name), "fc", None)
    features = fc.in_features if isinstance(fc, nn.Linear) else None
    rows = int(weight.shape[0]) if weight.ndim >= 1 else 0
    if weight.ndim != 2 or not 1 <= rows <= MAX_CLASSES or (features is not None and weight.shape[1] != features):
        raise ValueError(f"refused: fc.weight has shape {tuple(weight.shape)}; {model_name} expects "
                         f"(classes, {features if features is not None else 'features'}) with 1 to {MAX_CLASSES:,} "
                         "classes")
    return rows
