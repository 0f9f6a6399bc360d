"""The Train page's form: the settings that apply to the chosen mode, and a Start that starts once."""

from __future__ import annotations

import time

import streamlit as st

from explorer.data import BUILT_IN_IMAGE_DATASETS
from explorer.device import DEVICE_CHOICES
from explorer.i18n import N_
from explorer.train.precision import COMPILE_CHOICES, PRECISION_CHOICES
from explorer.train.presets import PRESETS, SHORT_RUN_STEPS, custom_configs, real_images_on_machine
from explorer.ui.i18n import _, translate
from explorer.ui.jobs import job_manager, shared_manager
from explorer.ui.session import viewer
from explorer.ui.timing import available_devices

QUICK_DEPTHS = [8, 14, 20, 32, 44, 56, 110]
CUSTOM_MODELS = ["cifar-plain20", "cifar-resnet20", "cifar-plain56", "cifar-resnet56", "cifar-preact-resnet20",
                 "resnet18"]
DATASETS = list(BUILT_IN_IMAGE_DATASETS)
GROUP_KEY = "train_group"  # the run folders this session started last: what the live panel shows
PROBLEM_KEY = "train_problem"
CLICKS_KEY = "train_clicks"
# The settings' words shown for their values (the values stay as they are); others show as they are.
CHOICE_NAMES = {"auto": N_("auto"), "on": N_("on"), "off": N_("off")}


def choice_names(choices) -> dict:
    """Each choice's words in this session's language, looked up now: a widget's format_func may
    be called outside the script run (Streamlit's AppTest does), where no session says which."""
    return {choice: translate(CHOICE_NAMES[choice]) if choice in CHOICE_NAMES else choice for choice in choices}


def train_form(choice: str, on_gpu: bool) -> None:
    """The form for ``choice`` ("quick", a preset key or "custom"): a preset takes only its data,
    device and seed; the schedule is the preset's. Start submits the runs in its callback, once
    per click: Streamlit 1.67 can dispatch one click's callback twice (measured on the
    Playground's buttons), and a doubled Start would train every net twice."""
    clicks = st.session_state.get(CLICKS_KEY, 0)
    with st.form("train"):
        columns = st.columns([3, 3, 2, 4] if choice in PRESETS else [3, 3, 4, 2])
        real_images = None if on_gpu else real_images_on_machine()  # a class would rather see real images
        datasets = DATASETS + ([real_images] if real_images and real_images not in DATASETS else [])
        default = "shapes" if on_gpu else real_images or "shapes-easy"
        columns[0].selectbox(
            _("Data set"), datasets, index=datasets.index(default), key="train_dataset",
            help=_("shapes-easy: ten shapes on a clean background, learnt within a minute on a CPU. shapes: the same "
                   "on clutter, harder (for the long schedule). Both are built in and work offline. cifar10: "
                   "downloaded on first use; once it is on this machine (or $RESNET_EXPLORER_REAL_IMAGES names a "
                   "folder of real images), the CPU presets train on it by default."))
        devices = training_devices()
        columns[1].selectbox(_("Device"), devices, format_func=choice_names(devices).get, key="train_device")
        if choice == "quick":
            columns[2].select_slider(_("Depth"), QUICK_DEPTHS, value=20, key="train_depth",
                                     help=_("6n+2 layers: plain-N and ResNet-N, the same but for the shortcuts"))
        elif choice == "custom":
            columns[2].multiselect(_("Models"), CUSTOM_MODELS, default=["cifar-plain20", "cifar-resnet20"],
                                   key="train_models", placeholder=_("Choose options"))
        columns[2 if choice in PRESETS else 3].number_input(_("Seed"), 0, 2**31 - 1, 0, key="train_seed",
                                 help=_("The data, the initial weights and the batch order. Every net of a run group "
                                        "gets the same seed; try another to see how much a short run varies."))
        if choice not in PRESETS:
            cpu = PRESETS["fig6"].cpu  # the CPU defaults are the presets' short schedule
            columns = st.columns([2, 2, 2, 2, 1.6, 1.6])
            columns[0].number_input(_("Steps"), 10, 1_000_000, 2_000 if on_gpu else cpu.steps, step=50,
                                    key="train_steps")
            columns[1].select_slider(_("Batch size"), [16, 32, 64, 128, 256], value=128 if on_gpu else cpu.batch_size,
                                     key="train_batch")
            columns[2].number_input(_("Learning rate"), 0.001, 1.0, 0.1 if on_gpu else cpu.lr, format="%.3f",
                                    key="train_lr")
            columns[3].number_input(_("Training images"), 100, 50_000, cpu.train_size, step=500, key="train_images")
            columns[4].select_slider(_("Image size"), [16, 24, 32], value=32 if on_gpu else cpu.image_size,
                                     key="train_image_size",
                                     help=_("Pixels per side. Smaller images train faster on a CPU: the CPU presets "
                                            "use 16."))
            columns[5].checkbox(_("Augment"), value=on_gpu or cpu.augment, key="train_augment",
                                help=_("The paper's pad-4 random crop and flip. Off in the CPU presets: on 16-pixel "
                                       "images it slows a one-minute run's learning a lot."))
        with st.expander(_("Advanced settings")):
            columns = st.columns(2)
            columns[0].selectbox(
                _("Precision"), PRECISION_CHOICES, format_func=choice_names(PRECISION_CHOICES).get,
                key="train_precision",
                help=_("auto: bf16 autocast where the processor computes bfloat16 natively (recent GPUs; CPUs with "
                       "AVX512-BF16 or AMX), else fp32. bf16 on a processor without it is emulated and slower. "
                       "Layer responses and gradient norms are always measured in fp32."))
            columns[1].selectbox(
                "torch.compile", COMPILE_CHOICES, format_func=choice_names(COMPILE_CHOICES).get, key="train_compile",
                help=_("auto: on a GPU only. On a CPU compiling takes longer than a short run gains (measured "
                       "in bench/results/train-throughput-*); a failed compile trains without it."))
        st.form_submit_button(_("Start"), icon=":material/play_arrow:", type="primary", on_click=_start,
                              args=(choice, clicks))
        if choice not in PRESETS:
            st.caption(_("The learning rate drops by 10 at 90% of the steps, or at 50% and 75% (as the paper) from "
                         "{steps:,} steps on. The CPU defaults are the presets' short schedule.").format(
                steps=SHORT_RUN_STEPS))
    problem = st.session_state.pop(PROBLEM_KEY, None)
    if problem:
        st.error(problem, icon=":material/error:")


def training_devices() -> list[str]:
    """The device choices where this server's runs train: this machine's, or a Ray cluster's."""
    return available_devices(DEVICE_CHOICES, job_manager().backend.training_device)


def chosen_device(choice: str | None = None) -> str:
    """The device type the chosen device (or ``choice``) trains on, where the runs train; "auto"'s
    when the choice is gone (a Ray cluster that lost its GPU node since it was chosen)."""
    backend = job_manager().backend
    for asked in (choice or st.session_state.get("train_device", "auto"), "auto"):
        try:
            return backend.training_device(asked)
        except ValueError as error:
            problem = error
    st.error(_("Training is not available: {reason}").format(reason=problem), icon=":material/error:")  # a Ray cluster that stopped answering
    st.stop()


def _start(choice: str, clicks_when_drawn: int) -> None:
    state = st.session_state
    if state.get(CLICKS_KEY, 0) != clicks_when_drawn:
        return  # this click was carried out already
    state[CLICKS_KEY] = clicks_when_drawn + 1
    try:
        device = shared_manager().backend.training_device(state.get("train_device", "auto"))
    except ValueError as error:  # a Ray cluster that lost its GPU node since the form was drawn
        state[PROBLEM_KEY] = _("Cannot start: {reason}").format(reason=error)
        return
    dataset, seed = state["train_dataset"], int(state["train_seed"])
    speed = dict(precision=state.get("train_precision", "auto"), compile=state.get("train_compile", "auto"))
    if choice in PRESETS:
        configs = PRESETS[choice].configs(device, dataset=dataset, seed=seed, **speed)
    else:
        names = ([f"cifar-plain{state['train_depth']}", f"cifar-resnet{state['train_depth']}"] if choice == "quick"
                 else list(state["train_models"]))
        configs = custom_configs(names, dataset, int(state["train_steps"]), int(state["train_batch"]),
                                 float(state["train_lr"]), device, int(state["train_images"]), seed=seed,
                                 image_size=int(state["train_image_size"]), augment=bool(state["train_augment"]),
                                 **speed)
    if not configs:
        state[PROBLEM_KEY] = _("Pick at least one model.")
        return
    try:
        # A refusal for want of space stays English inside the translated sentence until
        # tests/test_training_pages.py's stand-in manager takes `_`; then pass _=_ here.
        jobs = shared_manager().submit_group(configs, group=time.strftime("%Y%m%d-%H%M%S"), owner=viewer().owner,
                                             _=_)
    except ValueError as error:
        state[PROBLEM_KEY] = _("Cannot start: {reason}").format(reason=error)
        return
    state[GROUP_KEY] = [job.run_dir for job in jobs]
