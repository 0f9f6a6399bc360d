"""Grad-CAM (Selvaraju et al., 2017): where in the image a layer finds evidence for a class.

For a layer with activations A (channels k, positions i, j) and the class score y_c, Grad-CAM
weighs each channel by the mean of its gradient, ``w_k = mean_ij dy_c/dA_kij``, and keeps the
positive part of ``sum_k w_k A_k``. We compute it with captum's ``LayerGradCam`` and
``relu_attributions=True``, as in the paper, then upsample the map bilinearly to the image.

Images keep their aspect for ImageNet models: the shorter side is resized to 224 (a fully
convolutional ResNet with global pooling takes any size), so the map covers the whole image and
its peak is a position in the image as given. A model trained in the app sees the image squashed
to its training size (32x32 for ``shapes``), as its training images were.

The model is put in eval mode for the computation and given back in the mode it came in; captum
removes its hooks when it is done, also on error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from explorer.analysis.runs import run_label
from explorer.data.datasets import load_dataset
from explorer.i18n import N_, Translate, untranslated
from explorer.models import resolve
from explorer.models.mode import evaluating
from explorer.models.weights import (
    checked_model,
    download_pretrained,
    imagenet_classes,
    load_weights_file,
    num_classes_in,
)
from explorer.train.config import RunConfig
from explorer.train.store import Run
from explorer.train.trainer import model_options

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SHORT_SIDE = 224  # torchvision's evaluation size for the pretrained ResNets
LONG_SIDE_MAX = 672  # a panorama is squeezed rather than making a 224 x 5000 input
COLORMAPS = ("jet", "turbo", "inferno", "viridis")
TOP = 5
# The titles and the training images a page shows, marked for the catalog: the page translates them
# (a Classifier is shared by every session, so it keeps the template and its values, not one language).
IMAGENET_TITLE = N_("{name} (ImageNet, torchvision weights)")
UPLOADED_TITLE = N_("{name} (uploaded weights)")
TRAINED_ON = N_("{dataset} images of {size}x{size} pixels in {classes} classes")


@dataclass
class Classifier:
    """A model ready for Grad-CAM, with what it needs to read an image and name its classes."""

    model: nn.Module
    classes: list[str]
    title: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int | None = None  # square side of a model trained on small images; None keeps the aspect
    trained_on: str | None = None  # what a run's net saw in training, for the page to compare the image with
    # title and trained_on as (template marked with N_, its values), for a page to show in its language
    title_text: tuple[str, dict] | None = None
    trained_on_text: tuple[str, dict] | None = None


@dataclass
class GradCam:
    """One Grad-CAM of one image at one layer."""

    layer: str
    target: int
    target_label: str
    predictions: list[tuple[str, float]]  # top-5 (label, probability)
    heatmap: np.ndarray  # float32 (H, W) of the image as given, >= 0
    layer_size: tuple[int, int]  # the layer's own resolution before upsampling
    notes: list[str] = field(default_factory=list)

    @property
    def peak(self) -> tuple[int, int] | None:
        """(row, col) of the heatmap's maximum in the image's pixels; None when the map is all zero."""
        if not np.any(self.heatmap > 0):
            return None
        row, col = np.unravel_index(int(np.argmax(self.heatmap)), self.heatmap.shape)
        return int(row), int(col)

    def to_json(self, heatmap_path: str | Path | None = None) -> dict:
        return {
            "predictions": [{"label": label, "prob": prob} for label, prob in self.predictions],
            "layer": self.layer,
            "target": self.target_label,
            "target_index": self.target,
            "peak": list(self.peak) if self.peak else None,
            "heatmap": str(heatmap_path) if heatmap_path else None,
            "layer_size": list(self.layer_size),
            "notes": self.notes,
        }


# --- layers ------------------------------------------------------------------------------------
def cam_layers(model: nn.Module) -> list[str]:
    """Every stage and every block, in network order: ``layer1``, ``layer1.0``, ``layer1.1``, ... ."""
    names = []
    for index in range(1, 10):
        stage = getattr(model, f"layer{index}", None)
        if stage is None:
            break
        names.append(f"layer{index}")
        names.extend(f"layer{index}.{block}" for block, _module in stage.named_children())
    if not names:
        raise ValueError(f"Grad-CAM here needs a ResNet-style model with stages layer1, layer2, ...; "
                         f"{type(model).__name__} has none")
    return names


def default_layer(model: nn.Module) -> str:
    """The last convolutional stage, the usual Grad-CAM layer: the most semantic, still spatial."""
    return [name for name in cam_layers(model) if "." not in name][-1]


def check_layer(model: nn.Module, layer: str) -> str:
    layers = cam_layers(model)
    if layer not in layers:
        stages = [name for name in layers if "." not in name]
        raise ValueError(f"no layer {layer!r} in this model; choose a stage ({', '.join(stages)}) or a block "
                         f"such as {layers[1]} or {layers[-1]}")
    return layer


# --- classes -----------------------------------------------------------------------------------
def resolve_target(classes: list[str], target: str | int) -> int:
    """A class index from an index or a name: exact (any case), else a unique part of one."""
    if isinstance(target, (int, np.integer)) or (isinstance(target, str) and target.strip().isdigit()):
        index = int(target)
        if not 0 <= index < len(classes):
            raise ValueError(f"class index {index} is out of range: this model has {len(classes)} classes "
                             f"(0 to {len(classes) - 1})")
        return index
    wanted = str(target).strip().lower()
    exact = [i for i, name in enumerate(classes) if name.lower() == wanted]
    if exact:
        return exact[0]
    partial = [i for i, name in enumerate(classes) if wanted and wanted in name.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise ValueError(f"no class named {target!r}; this model's classes include "
                         f"{', '.join(classes[:5])}{' ...' if len(classes) > 5 else ''}")
    shown = ", ".join(classes[i] for i in partial[:6])
    raise ValueError(f"{target!r} matches {len(partial)} classes ({shown}{' ...' if len(partial) > 6 else ''}); "
                     "give the whole name or its index")


# --- images in and out -------------------------------------------------------------------------
def input_size_for(image: np.ndarray, classifier: Classifier) -> tuple[int, int]:
    """(height, width) the image is resized to before the model sees it."""
    if classifier.input_size:
        return classifier.input_size, classifier.input_size
    height, width = image.shape[:2]
    scale = SHORT_SIDE / min(height, width)
    return (min(round(height * scale), LONG_SIDE_MAX), min(round(width * scale), LONG_SIDE_MAX))


def prepare(image: np.ndarray, classifier: Classifier) -> torch.Tensor:
    """An RGB uint8 (H, W, 3) image as the model's normalised (1, 3, h, w) input."""
    height, width = input_size_for(image, classifier)
    resized = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    tensor = torch.from_numpy(resized.copy()).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(classifier.mean).view(3, 1, 1)
    std = torch.tensor(classifier.std).view(3, 1, 1)
    return ((tensor - mean) / std).unsqueeze(0)


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """The heatmap (scaled to its maximum) coloured and blended over the image; RGB uint8."""
    import matplotlib

    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; valid: {', '.join(COLORMAPS)}")
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    peak = float(heatmap.max())
    scaled = heatmap / peak if peak > 0 else np.zeros_like(heatmap)
    colours = matplotlib.colormaps[colormap](scaled)[..., :3] * 255
    blended = (1 - opacity) * image.astype(np.float32) + opacity * colours
    return np.clip(blended, 0, 255).astype(np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


# --- the computation ---------------------------------------------------------------------------
def layer_gradcam(model: nn.Module, inputs: torch.Tensor, layer: str, target: int) -> torch.Tensor:
    """captum's LayerGradCam at ``layer`` for class ``target``: a (h, w) map >= 0 at the layer's resolution."""
    from captum.attr import LayerGradCam

    module = model.get_submodule(check_layer(model, layer))
    with evaluating(model):
        cam = LayerGradCam(model, module).attribute(inputs, target=target, relu_attributions=True)
    return cam.detach()[0, 0]


def predict(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities for one input, in eval mode; the model's mode is restored."""
    with evaluating(model), torch.no_grad():
        return torch.softmax(model(inputs).float(), dim=1)[0]


def explain(classifier: Classifier, image: np.ndarray, layers: str | list[str] | None = None,
            target: str | int | None = None, _: Translate = untranslated) -> list[GradCam]:
    """Grad-CAM of ``image`` at each of ``layers`` (default: the last stage) for ``target`` (default: top-1);
    ``_`` translates the notes."""
    model = classifier.model
    layers = [layers] if isinstance(layers, str) else (layers or [default_layer(model)])
    for layer in layers:
        check_layer(model, layer)
    device = next(model.parameters()).device
    inputs = prepare(image, classifier).to(device)
    probabilities = predict(model, inputs)
    top = torch.topk(probabilities, min(TOP, len(probabilities)))
    predictions = [(classifier.classes[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]
    index = int(top.indices[0]) if target is None or target == "" else resolve_target(classifier.classes, target)
    height, width = image.shape[:2]
    results = []
    for layer in layers:
        cam = layer_gradcam(model, inputs, layer, index)
        upsampled = F.interpolate(cam[None, None].float(), size=(height, width), mode="bilinear", align_corners=False)
        heatmap = upsampled[0, 0].clamp_(min=0).cpu().numpy().astype(np.float32)
        notes = [] if heatmap.max() > 0 else [
            _("the map is zero everywhere: at {layer} no position has positive evidence for {label}").format(
                layer=layer, label=classifier.classes[index])]
        results.append(GradCam(layer, index, classifier.classes[index], predictions, heatmap,
                               (int(cam.shape[0]), int(cam.shape[1])), notes))
    return results


# --- models to explain -------------------------------------------------------------------------
def pretrained_classifier(name: str, weights: str | Path | bytes | None = None, progress=None) -> Classifier:
    """An ImageNet ResNet with torchvision's weights: downloaded (cached) or from a file given."""
    source = weights if weights is not None else download_pretrained(name, progress=progress)
    model = checked_model(name, load_weights_file(source))
    return Classifier(model.eval(), imagenet_classes(), IMAGENET_TITLE.format(name=name),
                      title_text=(IMAGENET_TITLE, {"name": name}))


def state_dict_classifier(name: str, weights: str | Path | bytes) -> Classifier:
    """Any registry model with a state_dict file; its class count is read from the file's ``fc``.

    Keys, shapes and the class count (at most ``MAX_CLASSES``) are checked before the model is built.
    """
    state_dict = load_weights_file(weights)
    num_classes = num_classes_in(state_dict, name) or 1000
    model = checked_model(name, state_dict, num_classes=num_classes)
    classes = imagenet_classes() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)]
    small = resolve(name).family == "cifar"
    return Classifier(model.eval(), classes, UPLOADED_TITLE.format(name=name), input_size=32 if small else None,
                      title_text=(UPLOADED_TITLE, {"name": name}))


def run_classifier(run_dir: str | Path) -> Classifier:
    """The model a run trained, with its classes, input size and normalisation."""
    run = Run(run_dir)
    if not run.exists():
        raise ValueError(f"{run_dir} is not a run folder (it has no config.json)")
    if not (run.path / "model.pt").exists():
        raise ValueError(f"{run.id} has no saved model yet: a run saves one at each checkpoint and when it ends")
    config = RunConfig.from_json(run.config())
    info = run.data_info()
    if info is None:  # runs made before data.json existed: draw the data set again (same seed, same classes)
        dataset = load_dataset(config.data.dataset, seed=config.seed, train_size=config.data.train_size,
                               test_size=config.data.test_size, data_dir=config.data.data_dir,
                               image_size=config.data.image_size)
        info = {"classes": dataset.classes, "image_size": dataset.image_size, "mean": dataset.mean,
                "std": dataset.std}
    state_dict = load_weights_file(run.path / "model.pt")  # as Run.load_model, with one-line errors
    model = checked_model(config.model.name, state_dict,
                          **model_options(config, len(info["classes"]), info["image_size"]))
    size = int(info["image_size"])
    trained_on = {"dataset": config.data.dataset, "size": size, "classes": len(info["classes"])}
    return Classifier(model.eval(), list(info["classes"]), run_label(run), tuple(info["mean"]), tuple(info["std"]),
                      input_size=size, trained_on=TRAINED_ON.format(**trained_on),
                      trained_on_text=(TRAINED_ON, trained_on))
