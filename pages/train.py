import time

import streamlit as st

from explorer.data import BUILT_IN_IMAGE_DATASETS
from explorer.device import describe_device, resolve_device
from explorer.train.presets import PRESETS, SHORT_RUN_STEPS, custom_configs
from explorer.ui.jobs import job_manager, latest_group
from explorer.ui.live import live_panel
from explorer.ui.session import viewer
from explorer.ui.timing import available_devices

QUICK_DEPTHS = [8, 14, 20, 32, 44, 56, 110]
DATASETS = list(BUILT_IN_IMAGE_DATASETS)


def torch_device_type() -> str:
    return resolve_device("auto").type

st.title("Train")
st.caption("Train plain and residual nets side by side and watch them learn. Runs go on when you switch pages "
           "and are saved under runs/, where the Runs page finds them.")

auto_device_type = torch_device_type()
on_gpu = auto_device_type == "cuda"
choice = st.radio("What to train", ["quick", *PRESETS, "custom"], horizontal=True,
                  format_func=lambda key: {"quick": "Quick pair: plain-N vs ResNet-N", "custom": "Custom"}.get(
                      key, PRESETS[key].title_on(auto_device_type) if key in PRESETS else key))
if choice in PRESETS:
    preset = PRESETS[choice]
    st.info(f"**{preset.title_on(auto_device_type)}.** On {'this GPU' if on_gpu else 'the CPU'} it runs "
            f"{preset.describe(auto_device_type)} Shows: {preset.shows} Cannot show: {preset.cannot}",
            icon=":material/science:")
    measured = preset.measured_on_cpu()
    if measured and not on_gpu:
        with st.expander("What this preset showed when we measured it"):
            st.write(measured)
with st.form("train"):
    columns = st.columns([3, 3, 3, 3, 2])
    dataset = columns[0].selectbox(
        "Data set", DATASETS, index=DATASETS.index("shapes" if on_gpu else "shapes-easy"),
        help="shapes-easy: ten shapes on a clean background, learnt within a minute on a CPU. shapes: the same on "
             "clutter, harder (for the long schedule). Both are built in and work offline. cifar10: downloaded on "
             "first use.")
    device_name = columns[1].selectbox("Device", available_devices(("auto", "cpu", "cuda", "mps")))
    depth = columns[2].select_slider("Depth (quick pair)", QUICK_DEPTHS, value=20)
    models = columns[3].multiselect("Models (custom)", ["cifar-plain20", "cifar-resnet20", "cifar-plain56",
                                                         "cifar-resnet56", "cifar-preact-resnet20", "resnet18"],
                                    default=["cifar-plain20", "cifar-resnet20"])
    seed = columns[4].number_input("Seed", 0, 2**31 - 1, 0, help="The data, the initial weights and the batch order. "
                                   "Every net of a run group gets the same seed; try another to see how much a "
                                   "short run varies.")
    columns = st.columns(5)
    steps = columns[0].number_input("Steps (quick, custom)", 10, 1_000_000, 300, step=50)
    batch_size = columns[1].select_slider("Batch size (quick, custom)", [16, 32, 64, 128, 256], value=64)
    lr = columns[2].number_input("Learning rate (quick, custom)", 0.001, 1.0, 0.1 if on_gpu else 0.05, format="%.3f")
    train_size = columns[3].number_input("Training images (quick, custom)", 100, 50_000, 5_000, step=500)
    image_size = columns[4].select_slider("Image size (quick, custom)", [16, 24, 32], value=32 if on_gpu else 16,
                                          help="Pixels per side. Smaller images train faster on a CPU: the "
                                               "CPU presets use 16.")
    start = st.form_submit_button("Start", icon=":material/play_arrow:", type="primary")
    st.caption(f"Quick and custom runs drop the learning rate by 10 at 90% of the steps, or at 50% and 75% (as the "
               f"paper) from {SHORT_RUN_STEPS:,} steps on. The CPU defaults are the presets' short schedule.")

device = resolve_device(device_name)
st.caption(f"Training on **{describe_device(device)}**.")

if start:
    if choice in PRESETS:
        configs = PRESETS[choice].configs(device.type, dataset=dataset, seed=int(seed))
    else:
        names = [f"cifar-plain{depth}", f"cifar-resnet{depth}"] if choice == "quick" else models
        configs = custom_configs(names, dataset, int(steps), int(batch_size), float(lr), device.type, int(train_size),
                                 seed=int(seed), image_size=int(image_size))
    if not configs:
        st.error("Pick at least one model.")
    else:
        try:
            jobs = job_manager().submit_group(configs, group=time.strftime("%Y%m%d-%H%M%S"), owner=viewer().owner)
            st.session_state["train_group"] = [job.run_dir for job in jobs]
        except ValueError as error:
            st.error(f"Cannot start: {error}")

shown = st.session_state.get("train_group") or [str(run.path) for run in latest_group()]
live_panel(shown)
