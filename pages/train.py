import time

import streamlit as st

from explorer.device import describe_device, resolve_device
from explorer.train.presets import PRESETS, custom_configs
from explorer.ui.jobs import job_manager, latest_group
from explorer.ui.live import live_panel
from explorer.ui.timing import available_devices

QUICK_DEPTHS = [8, 14, 20, 32, 44, 56, 110]


def torch_device_type() -> str:
    return resolve_device("auto").type

st.title("Train")
st.caption("Train plain and residual nets side by side and watch them learn. Runs go on when you switch pages "
           "and are saved under runs/, where the Runs page finds them.")

choice = st.radio("What to train", ["quick", *PRESETS, "custom"], horizontal=True,
                  format_func=lambda key: {"quick": "Quick pair: plain-N vs ResNet-N", "custom": "Custom"}.get(
                      key, PRESETS[key].title if key in PRESETS else key))
if choice in PRESETS:
    preset = PRESETS[choice]
    st.info(f"**{preset.title}.** On {'this GPU' if torch_device_type() == 'cuda' else 'the CPU'} it runs "
            f"{preset.describe(torch_device_type())} Shows: {preset.shows} Cannot show: {preset.cannot}",
            icon=":material/science:")
with st.form("train"):
    columns = st.columns(4)
    dataset = columns[0].selectbox("Data set", ["shapes", "cifar10"], help="shapes is built in and works offline; "
                                   "cifar10 is downloaded on first use.")
    device_name = columns[1].selectbox("Device", available_devices(("auto", "cpu", "cuda", "mps")))
    depth = columns[2].select_slider("Depth (quick pair)", QUICK_DEPTHS, value=20)
    models = columns[3].multiselect("Models (custom)", ["cifar-plain20", "cifar-resnet20", "cifar-plain56",
                                                         "cifar-resnet56", "cifar-preact-resnet20", "resnet18"],
                                    default=["cifar-plain20", "cifar-resnet20"])
    columns = st.columns(4)
    steps = columns[0].number_input("Steps (quick, custom)", 10, 1_000_000, 200, step=50)
    batch_size = columns[1].select_slider("Batch size (quick, custom)", [16, 32, 64, 128, 256], value=32)
    lr = columns[2].number_input("Learning rate (quick, custom)", 0.001, 1.0, 0.1, format="%.3f")
    train_size = columns[3].number_input("Training images (quick, custom)", 100, 50_000, 5_000, step=500)
    start = st.form_submit_button("Start", icon=":material/play_arrow:", type="primary")

device = resolve_device(device_name)
st.caption(f"Training on **{describe_device(device)}**.")

if start:
    if choice in PRESETS:
        configs = PRESETS[choice].configs(device.type, dataset=dataset)
    else:
        names = [f"cifar-plain{depth}", f"cifar-resnet{depth}"] if choice == "quick" else models
        configs = custom_configs(names, dataset, int(steps), int(batch_size), float(lr), device.type, int(train_size))
    if not configs:
        st.error("Pick at least one model.")
    else:
        try:
            jobs = job_manager().submit_group(configs, group=time.strftime("%Y%m%d-%H%M%S"))
            st.session_state["train_group"] = [job.run_dir for job in jobs]
        except ValueError as error:
            st.error(f"Cannot start: {error}")

shown = st.session_state.get("train_group") or [str(run.path) for run in latest_group()]
live_panel(shown)
