"""The pages on the published converged nets (issue 20), under AppTest: Table 6 live on Complexity,
Fig. 7, Grad-CAM on CIFAR-10 test images, and the offline message that leaves the runs trained here.
The weights are a file in the published layout made by tests/test_published.py's fixtures."""

import time

from streamlit.testing.v1 import AppTest

from explorer.models.published import CIFAR10_CLASSES
from tests.test_analysis_jobs import _page

SPEC = "pretrained:cifar-resnet20"
FOLDER_CHOICE = "A folder of CIFAR-10 images"


def _converged(app: AppTest, key: str, folder, specs=(SPEC,)) -> AppTest:
    """The test set (a folder), then the nets, as a person picks them."""
    app.radio(key=f"{key}-test-set").set_value(FOLDER_CHOICE).run()
    app.text_input(key=f"{key}-folder").set_value(str(folder)).run()
    app.multiselect(key=key).set_value(list(specs)).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _until(app: AppTest, condition, timeout: float = 180) -> AppTest:
    deadline = time.time() + timeout
    while not condition(app) or app.get("progress"):
        assert not app.error, [e.value for e in app.error]
        assert time.time() < deadline, "the results were not drawn"
        time.sleep(0.5)
        app.run()
    return app


def test_table6_live_evaluates_the_converged_nets_as_a_job(published_pair):
    _, folder = published_pair
    app = _converged(_page("complexity.py"), "table6-converged", folder)
    app.number_input(key="table6-images").set_value(100).run()
    next(button for button in app.button if button.label == "Evaluate the converged nets").click().run()
    _until(app, lambda app: len(app.dataframe) == 3)
    table = app.dataframe[2].value
    assert list(table["net"]) == ["cifar-resnet20"] and list(table["images"]) == [30]  # all the folder has
    assert list(table["published %"]) == [8.27] and list(table["paper %"]) == [8.75]
    text = " ".join(markdown.value for markdown in app.markdown)
    assert "on the first 30 test images" in text and "from the published figure (8.27%)" in text


def test_fig7_draws_a_converged_net_beside_the_runs(published_pair):
    _, folder = published_pair
    app = _converged(_page("responses.py"), "responses-converged", folder)
    next(button for button in app.button if button.label.startswith("Measure the converged")).click().run()
    _until(app, lambda app: len(app.get("plotly_chart")) == 2)
    summary = app.dataframe[0].value
    row = summary[summary["run"] == "cifar-resnet20 · converged (published weights)"]
    assert list(row["at"]) == ["final weights"] and float(row["mean_std"].iloc[0]) > 0
    assert any("What our measurement says" in subheader.value for subheader in app.subheader)


def test_gradcam_explains_a_cifar10_test_image_with_a_converged_net(published_pair):
    _, folder = published_pair
    app = _page("gradcam.py")
    app.radio[0].set_value("CIFAR-10 test image").run()
    app.radio(key="gradcam-images-test-set").set_value(FOLDER_CHOICE).run()
    app.text_input(key="gradcam-images-folder").set_value(str(folder)).run()
    app.selectbox[0].set_value("cat").run()
    picker = next(radio for radio in app.radio if radio.label == "Test image")
    assert picker.options == ["#9", "#10", "#11"]  # the cat class's test images (3 per class, cats 4th)
    picker.set_value(1).run()
    model_radio = next(radio for radio in app.radio if radio.label == "Model")
    model_radio.set_value("Converged CIFAR-10 ResNet (published)").run()
    app.multiselect[0].set_value([SPEC]).run()
    assert not app.exception, [e.value for e in app.exception]
    predictions = app.dataframe[0].value
    assert set(predictions["class"]) <= set(CIFAR10_CLASSES) and len(predictions) == 5
    assert any("Heatmaps for" in caption.value for caption in app.caption)


def test_offline_a_converged_net_is_one_line_and_the_page_goes_on(hub):
    app = _page("lesion.py")
    app.multiselect(key="lesion-runs-converged").set_value(["pretrained:cifar-resnet56"]).run()
    assert not app.exception, [e.value for e in app.exception]
    [warning] = [w.value for w in app.warning if "ResNet-56" in w.value]
    assert "not available here" in warning and "below" not in warning  # it promises no runs that may not be there
    assert "resnet56-4bfd9763.th" in warning
