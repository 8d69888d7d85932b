"""The layering and the one-owner rule hold: import-linter's contract in pyproject.toml."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_nothing_imports_upward() -> None:
    tool = shutil.which("lint-imports")
    assert tool, "import-linter is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run([tool], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
