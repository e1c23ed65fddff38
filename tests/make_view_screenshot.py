"""Remake docs/view.png, the README's picture of the run viewer, the way test_view.py makes its
screenshot: a scripted run of PSB2 fizz-buzz, its view, a click on the last repair.

    python -m tests.make_view_screenshot
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from seidr.config import REPO_ROOT
from seidr.view import write_run_view
from tests.browser import screenshot_view
from tests.conftest import find_data_dir
from tests.servers.openai_server import OpenAIServer
from tests.test_cli import run_main
from tests.test_resume import deep_reply

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as out, OpenAIServer(deep_reply, model="m") as server:
        proc = run_main("model=openai", "model.name=m", "model.api_key=k", f"model.base_url={server.base_url}",
                        "search.max_programs=40", data_dir=find_data_dir(), output_root=Path(out))
        assert proc.returncode == 0, proc.stderr
        [result] = list(Path(out).rglob("result.json"))
        target = REPO_ROOT / "docs" / "view.png"
        screenshot_view(write_run_view(result.parent), target)
        print(target)
