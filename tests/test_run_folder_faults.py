"""A run folder on a disk that is already full: one line, the same as a disk that fills during
the run, before Hydra writes into it."""

from __future__ import annotations

from tests.test_cli import assert_one_clear_error, run_main
from tests.test_storage_faults import fill, tmpfs


def test_a_run_folder_on_a_full_disk_is_the_one_line_of_a_disk_that_fills(data_dir, tmp_path):
    with tmpfs(tmp_path / "disk", "size=256k") as disk:
        fill(disk)
        run_dir = disk / "run"
        proc = run_main("model=openai", "model.api_key=k", f"hydra.run.dir={run_dir}", data_dir=data_dir,
                        output_root=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_one_clear_error(proc, f"cannot write {run_dir}: No space left on device", "free space",
                           f"hydra.run.dir={run_dir}")
