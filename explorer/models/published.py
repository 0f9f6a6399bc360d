"""The paper's CIFAR-10 ResNets trained to convergence: Yerlan Idelbayev's published weights.

``akamaster/pytorch_resnet_cifar10`` (BSD-2) trained ResNet-20/32/44/56/110/1202 with option-A
shortcuts, exactly the nets ``cifar-resnet{D}`` builds here (same parameters, same function), and
publishes them as ``pretrained_models/resnet{D}-{hash}.th``, the 8 hex digits being the start of
the file's sha256. Each file is an old-format ``torch.save`` of ``{'best_prec1': float,
'state_dict': ...}``: keys prefixed ``module.`` (DataParallel), the classifier named ``linear``,
storages tagged ``cuda:0``, and no BatchNorm ``num_batches_tracked`` (PyTorch 0.3 had none).
The nets were trained on inputs normalised with ImageNet's mean and std, which is what they must be
evaluated with. A non-strict load of these files is a known way to get 10% accuracy (that
repository's issue #22): here every key is mapped and the load is strict.

Errors, test set of CIFAR-10 (%):

    depth   published   paper (Table 6)
    20      8.27        8.75
    32      7.37        7.51
    44      6.90        7.17
    56      6.61        6.97
    110     6.32        6.43
    1202    6.18        7.93

No converged plain CIFAR nets of the paper's design are published.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.download import Progress, fetch
from explorer.models.weights import checked_model, load_weights_file

PRETRAINED_PREFIX = "pretrained:"
URL_ENV = "RESNET_EXPLORER_CIFAR_WEIGHTS_URL"
DEFAULT_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models"
# ImageNet's mean and std: what these nets were trained with (the repository's trainer.py).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SOURCE = "Y. Idelbayev, akamaster/pytorch_resnet_cifar10 (BSD-2)"
DOWNLOAD_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class PublishedNet:
    depth: int
    file_name: str
    published_error: float  # fraction, the repository's README
    paper_error: float  # fraction, the paper's Table 6

    @property
    def model_name(self) -> str:
        return f"cifar-resnet{self.depth}"

    @property
    def spec(self) -> str:
        return PRETRAINED_PREFIX + self.model_name


PUBLISHED = {net.depth: net for net in (
    PublishedNet(20, "resnet20-12fca82f.th", 0.0827, 0.0875),
    PublishedNet(32, "resnet32-d509ac18.th", 0.0737, 0.0751),
    PublishedNet(44, "resnet44-014dd654.th", 0.0690, 0.0717),
    PublishedNet(56, "resnet56-4bfd9763.th", 0.0661, 0.0697),
    PublishedNet(110, "resnet110-1d1ed7c2.th", 0.0632, 0.0643),
    PublishedNet(1202, "resnet1202-f3b1deed.th", 0.0618, 0.0793),
)}
PUBLISHED_SPECS = tuple(net.spec for net in PUBLISHED.values())


def published_net(spec: str) -> PublishedNet:
    """The published net that ``pretrained:cifar-resnet{D}`` (or ``cifar-resnet{D}``) names; one
    line naming the six that exist otherwise."""
    name = spec.strip().removeprefix(PRETRAINED_PREFIX)
    match = re.fullmatch(r"cifar-resnet(\d+)", name)
    if match is None or int(match.group(1)) not in PUBLISHED:
        raise ValueError(f"no published converged weights for {name!r}: there are {', '.join(PUBLISHED_SPECS)}")
    return PUBLISHED[int(match.group(1))]


def is_pretrained_spec(text: str) -> bool:
    return str(text).strip().startswith(PRETRAINED_PREFIX)


def cached_file(net: PublishedNet) -> Path:
    """Where the torch hub cache keeps (or will keep) the file, under its own name."""
    return Path(torch.hub.get_dir()) / "checkpoints" / net.file_name


def file_url(net: PublishedNet) -> str:
    return f"{os.environ.get(URL_ENV, DEFAULT_URL).rstrip('/')}/{net.file_name}"


def offline_advice(net: PublishedNet) -> str:
    return (f"download {net.file_name} from {DEFAULT_URL} on a machine that is online and put it in "
            f"{cached_file(net).parent} (the torch hub cache, $TORCH_HOME/hub/checkpoints)")


def check_obtainable(net: PublishedNet, timeout: float = 3.0) -> None:
    """Refuse at once, in one line, weights that are neither cached nor downloadable (offline)."""
    from explorer.download import check_reachable

    if cached_file(net).exists():
        return
    check_reachable(file_url(net), what=f"the published {net.model_name} weights ({net.file_name})", timeout=timeout,
                    if_offline=offline_advice(net))


def download_published(net: PublishedNet, progress: Progress | None = None,
                       timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> Path:
    """The cached file, downloaded first if it is not there; its sha256 is checked against the
    hash in its name before it takes that name (a truncated or wrong file leaves nothing behind)."""
    destination = cached_file(net)
    if destination.exists():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    expected = torch.hub.HASH_REGEX.search(net.file_name).group(1)
    return fetch(file_url(net), destination, what=f"the published {net.model_name} weights ({net.file_name})",
                 algorithm="sha256", expected=expected, progress=progress, timeout=timeout,
                 if_offline=offline_advice(net))


def check_cached_file(net: PublishedNet, path: Path) -> None:
    """A file in the cache whose sha256 does not start with the hash in its name is deleted and refused."""
    import hashlib

    expected = torch.hub.HASH_REGEX.search(net.file_name).group(1)
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    if not digest.hexdigest().startswith(expected):
        path.unlink(missing_ok=True)
        raise ValueError(f"{path.name} has sha256 {digest.hexdigest()[:8]}..., not the {expected} its name promises: "
                         f"it was deleted, not loaded; {offline_advice(net)}")


def to_cifar_resnet(published: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The published keys in ``cifar-resnet{D}``'s names: ``module.`` dropped (load_weights_file
    does), ``linear.*`` as ``fc.*``, and the BatchNorm counters the files predate added as 0 (they
    count training batches and change nothing in evaluation). Every other key must match exactly:
    the strict check comes after."""
    mapped = {("fc." + key[len("linear."):]) if key.startswith("linear.") else key: value
              for key, value in published.items()}
    for key, value in model_state.items():
        if key.endswith(".num_batches_tracked") and key not in mapped:
            prefix = key[: -len("num_batches_tracked")]
            if f"{prefix}running_mean" in mapped:  # a BatchNorm the file has: only its counter is missing
                mapped[key] = torch.zeros((), dtype=value.dtype)
    return mapped


def load_published(spec: str, progress: Progress | None = None) -> torch.nn.Module:
    """``cifar-resnet{D}`` with the published weights, strictly loaded, on the CPU, in eval mode."""
    net = published_net(spec)
    path = download_published(net, progress=progress)
    check_cached_file(net, path)
    return published_model(net, path)


def published_model(net: PublishedNet, source) -> torch.nn.Module:
    """``cifar-resnet{D}`` from a file in the published layout (a path or bytes), strictly."""
    from explorer.models.cost import meta_model

    state = to_cifar_resnet(load_weights_file(source), meta_model(net.model_name).state_dict())
    try:
        return checked_model(net.model_name, state).eval()
    except ValueError as error:
        raise ValueError(f"{getattr(source, 'name', None) or net.file_name}: {error}") from None
