"""Every page under Streamlit's AppTest: it renders without exception and reacts to its widgets."""

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "explorer" / "app.py")


def open_page(page: str | None = None, lang: str | None = None) -> AppTest:
    """The app at ``page`` (Home when None), its address carrying ``?lang=`` when given."""
    app = AppTest.from_file(APP, default_timeout=180)
    if lang is not None:
        app.query_params["lang"] = lang
    app.run()
    if page:
        app.switch_page(str(ROOT / "pages" / page))
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_home_explains_the_residual_block_and_links_every_page():
    app = open_page()
    assert app.title[0].value == "ResNet Explorer"
    assert any("H(x) = F(x) + x" in latex.value for latex in app.latex)
    text = " ".join(markdown.value for markdown in app.markdown)
    assert "degradation problem" in text
    from explorer.ui.navigation import PAGE_TABLE

    linked = {link.proto.page for link in app.get("page_link")}
    assert linked == set(PAGE_TABLE) - {"home"}


def test_architecture_default_and_every_family():
    app = open_page("architecture.py")
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Parameters"] == "269,722"
    assert metrics["Multiply-adds per image"] == "40.55 M"
    assert app.success and "Fits" in app.success[0].value

    app.radio(key="arch_family").set_value("imagenet").run()
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Parameters"] == "21,797,672"  # ResNet-34, option B
    app.selectbox(key="arch_in_depth").set_value(50).run()
    app.radio(key="arch_in_bottleneck").set_value("paper").run()
    assert {m.label: m.value for m in app.metric}["Multiply-adds per image"] == "3.858 G"

    app.radio(key="arch_family").set_value("vgg").run()
    assert {m.label: m.value for m in app.metric}["Parameters"] == "143,667,240"
    app.radio(key="arch_family").set_value("mlp").run()
    assert not app.exception and app.dataframe


def test_architecture_plain_twin_and_invalid_depth():
    app = open_page("architecture.py")
    app.radio(key="arch_cifar_variant").set_value("plain").run()
    assert {m.label: m.value for m in app.metric}["Parameters"] == "269,722"
    assert any("without shortcuts" in caption.value for caption in app.caption)

    app.number_input(key="arch_cifar_depth").set_value(21).run()
    assert not app.exception
    assert "nearest valid: 20 or 26" in app.error[0].value
    assert not app.metric  # nothing is drawn for a network that does not exist


def test_architecture_refuses_a_batch_that_cannot_fit():
    app = open_page("architecture.py")
    app.radio(key="arch_family").set_value("vgg").run()
    app.number_input[0].set_value(65_536).run()
    assert not app.exception
    assert "Too large for this machine" in app.warning[0].value and "needs about" in app.warning[0].value


def test_complexity_tables_explanation_and_timing():
    app = open_page("complexity.py")
    assert len(app.dataframe) == 2
    imagenet, cifar = (frame.value for frame in app.dataframe)
    assert list(imagenet.model) == ["vgg19", "plain34", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert imagenet.set_index("model").loc["resnet18", "params"] == 11_689_512
    assert cifar.set_index("model").loc["cifar-resnet1202", "params"] == 19_421_274
    assert "Why ResNet-50 measures 4.09 GMACs" in app.info[0].value

    app.multiselect[0].set_value(["cifar-resnet20"])
    app.multiselect[1].set_value([1, 2])
    app.slider[0].set_value(2)
    app.button[0].click().run()
    assert not app.exception
    timing = app.session_state["complexity_timing"]
    assert set(timing["forward_ms"]["cifar-resnet20"]) == {1, 2}
    assert any("Median of 2" in caption.value for caption in app.caption)


def test_complexity_timing_asks_for_a_model():
    app = open_page("complexity.py")
    app.multiselect[0].set_value([])
    app.button[0].click().run()
    assert not app.exception and "Pick at least one model" in app.error[0].value


def test_the_server_warm_up_imports_what_every_page_imports():
    """A page's first visit since the server started must not import pandas and the rest in its
    script run (a class's first click to Runs waited seconds for it): the warm-up does it first."""
    printed = _in_a_fresh_python("import sys\n"
                                 "from explorer.ui.warmup import page_imports, warm_imports\n"
                                 "assert 'pandas' not in sys.modules and 'pyarrow' not in sys.modules\n"
                                 "warm_imports()\n"
                                 "print(sorted(name for name in [*page_imports(), 'pyarrow'] if name not in sys.modules))\n")
    assert printed.strip() == "[]"
    from explorer.ui.warmup import page_imports

    pages_import = set(page_imports())
    assert {"pandas", "explorer.figures", "explorer.ui.train_form"} <= pages_import  # the parse finds them


def test_the_server_config_streamlit_reads_binds_loopback_and_watches_no_files():
    printed = _in_a_fresh_python("import streamlit.config as config\n"
                                 "config.get_config_options(force_reparse=True)\n"
                                 "print(config.get_option('server.address'), config.get_option('server.fileWatcherType'), "
                                 "config.get_option('server.maxUploadSize'))\n")
    assert printed.split() == ["127.0.0.1", "none", "256"]


def _in_a_fresh_python(script: str) -> str:
    """What ``script`` prints, run by a new interpreter in the project's root (as `streamlit run` is)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_live_panels_timer_does_not_undo_a_click_on_another_page():
    """A sidebar click (a full rerun of the page asked for) and then, before the busy server starts
    it, a live panel's timer on the page being left (a fragment rerun naming that page): the two
    are folded into one full rerun, of the page the click asked for."""
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests, ScriptRequestType

    from explorer.ui.rerun_requests import keep_the_page_a_click_asked_for

    assert keep_the_page_a_click_asked_for()
    requests = ScriptRequests()
    assert requests._state == ScriptRequestType.CONTINUE  # a script run is under way: requests are folded
    assert requests.request_rerun(RerunData(page_script_hash="runs-page", page_name="runs", query_string="a=1"))
    assert requests.request_rerun(RerunData(page_script_hash="train-page", page_name="train",
                                            fragment_id="live-panel", is_auto_rerun=True))
    folded = requests.on_scriptrunner_yield().rerun_data
    assert (folded.page_script_hash, folded.page_name, folded.query_string) == ("runs-page", "runs", "a=1")
    assert folded.fragment_id_queue == []  # still a full rerun: it draws the panel's fragment too

    # The other way round, the click comes last and its page was always kept.
    requests = ScriptRequests()
    requests.request_rerun(RerunData(page_script_hash="train-page", fragment_id="live-panel", is_auto_rerun=True))
    requests.request_rerun(RerunData(page_script_hash="runs-page", page_name="runs"))
    assert requests.on_scriptrunner_yield().rerun_data.page_script_hash == "runs-page"


def test_the_app_installs_the_fix_for_folded_requests():
    printed = _in_a_fresh_python(
        "from streamlit.testing.v1 import AppTest\n"
        "from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequests\n"
        "before = getattr(ScriptRequests._request_rerun_locked, 'keeps_the_page', False)\n"
        "AppTest.from_file('explorer/app.py', default_timeout=120).run()\n"
        "print(before, getattr(ScriptRequests._request_rerun_locked, 'keeps_the_page', False))\n")
    assert printed.split() == ["False", "True"]


class _Records:
    """The log records of the app's failure logger while a test runs (Streamlit's loggers do not
    propagate to the root, so pytest's caplog does not see them)."""

    def __init__(self):
        import logging

        self.records: list = []
        self.handler = logging.Handler()
        self.handler.emit = self.records.append

    def __enter__(self):
        from explorer.ui.failures import LOG

        LOG.addHandler(self.handler)
        return self.records

    def __exit__(self, *exc):
        from explorer.ui.failures import LOG

        LOG.removeHandler(self.handler)


def test_an_unforeseen_failure_shows_the_apps_message_and_logs_the_traceback(monkeypatch):
    """Not Streamlit's redacted red box: what failed, what to do, and a reference to the server's log."""
    import explorer.analysis.concepts as concepts

    def broken(**_options):
        raise RuntimeError("/srv/secret/path was not there")

    monkeypatch.setattr(concepts, "residual_block_dot", broken)  # the Home page draws Fig. 2 with it
    with _Records() as records:
        app = AppTest.from_file(APP, default_timeout=180).run()
    assert not app.exception
    assert app.title[0].value == "ResNet Explorer"  # what the page drew before the failure stays
    message = app.error[0].value
    assert message.startswith("The Home page failed") and "RuntimeError" in message and "Reload the page" in message
    assert "/srv/secret" not in message  # the message is the log's, not the screen's
    reference = message.rsplit("reference ", 1)[1].rstrip(".")
    logged = [record for record in records if reference in record.getMessage()]
    assert logged and logged[0].exc_info[0] is RuntimeError


def _fragment_that_fails():
    import streamlit as st

    from explorer.ui.failures import failures_shown, shows_failures

    @shows_failures("The live panel")
    def panel():
        st.write("panel drawn")
        raise KeyError("gone")

    st.fragment(panel)()
    st.write("after the panel")
    with failures_shown("A block that stops"):
        st.stop()  # Streamlit's control flow is not a failure
    st.write("never drawn")


def test_a_failing_fragment_shows_the_message_and_the_page_goes_on():
    with _Records() as records:
        app = AppTest.from_function(_fragment_that_fails, default_timeout=60).run()
    assert not app.exception
    assert [error.value.split(":")[0] for error in app.error] == ["The live panel failed"]
    assert "KeyError" in app.error[0].value
    shown = [markdown.value for markdown in app.markdown]
    assert "panel drawn" in shown and "after the panel" in shown and "never drawn" not in shown
    assert len(records) == 1
