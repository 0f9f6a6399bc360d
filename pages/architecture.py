import streamlit as st

from explorer.analysis.architecture import describe_blocks, layer_table, network_diagram
from explorer.analysis.complexity import measure
from explorer.models.cost import MAX_BATCH_SIZE, ModelTooLarge, check_fits, format_bytes, format_count
from explorer.figures import architecture_figure
from explorer.ui.feedback import explain_errors
from explorer.ui.i18n import _
from explorer.ui.model_picker import pick_model

st.title(_("Architecture"))
st.caption(_("Build a network as the paper defines it. Plain and residual twins share every layer but the shortcuts."))

choice = pick_model()
with explain_errors(_("Cannot build this network")):
    with st.spinner(_("Tracing {name}...").format(name=choice.name)):
        result = measure(choice.name, **choice.options)
        rows = layer_table(choice.name, _=_, **choice.options)
        diagram = network_diagram(choice.name, _=_, **choice.options)

st.subheader(choice.label)
st.caption(describe_blocks(choice.name, _=_, **choice.options))
metrics = st.columns(4)
metrics[0].metric(_("Parameters"), f"{result.params:,}")
metrics[1].metric(_("Multiply-adds per image"), format_count(result.macs))
metrics[2].metric(_("Activation memory per image"), format_bytes(result.activation_bytes_per_image),
                  help=_("What autograd keeps for the backward pass (fp32), measured by tracing one forward pass."))
metrics[3].metric(_("Input"), " x ".join(map(str, result.input_shape)))

st.plotly_chart(architecture_figure(diagram, _=_), width="stretch")
st.caption(_("Each box is a weighted layer (hover for its shape), coloured by stage; arcs are shortcuts. "
             "Long stages show their first and last blocks.") + ("" if diagram.arcs else
                                                                 _(" A plain net has no shortcuts.")))

st.dataframe(
    [{"stage": row.stage, "module": row.module, "output size": row.output_size, "layers": row.layers,
      "blocks": row.blocks, "channels": row.channels, "parameters": row.params} for row in rows],
    column_config={"stage": _("stage"), "module": _("module"), "output size": _("output size"),
                   "layers": _("layers"), "blocks": _("blocks"), "channels": _("channels"),
                   "parameters": st.column_config.NumberColumn(_("parameters"), format="localized")},
    hide_index=True, width="stretch",
)

st.subheader(_("Will it fit?"))
batch = st.number_input(_("Training batch size"), min_value=1, max_value=MAX_BATCH_SIZE, value=128, step=32)
try:
    estimate = check_fits(choice.name, int(batch), "auto", training=True, **choice.options)
    st.success(_("Fits: {estimate}.").format(estimate=estimate.describe(_=_)))
except ModelTooLarge as error:
    st.warning(_("Too large for this machine: {error}").format(error=error))
