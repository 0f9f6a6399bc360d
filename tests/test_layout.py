"""The library never imports Streamlit, so the CLI and notebooks work without it."""

import subprocess
import sys

from tests.conftest import ROOT

CHECK = """
import importlib, pkgutil, sys
sys.modules["streamlit"] = None  # any `import streamlit` now fails
import explorer
for module in pkgutil.walk_packages(explorer.__path__, "explorer."):
    if module.name == "explorer.app" or module.name.startswith("explorer.ui") or module.name == "explorer.__main__":
        continue
    importlib.import_module(module.name)
    print(module.name)
"""


def test_every_library_module_imports_without_streamlit():
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    assert {"explorer.cli", "explorer.models.registry", "explorer.analysis.complexity", "explorer.figures"} <= imported


def test_pages_are_thin():
    for page in (ROOT / "pages").glob("*.py"):
        source = page.read_text()
        assert "import torch" not in source, f"{page.name} does tensor work; move it into explorer/"
        assert len(source.splitlines()) < 220, f"{page.name} is long; move logic into explorer/"
