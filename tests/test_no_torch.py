"""fieldharness works without torch: import, prepare, load and evaluate with torch imports
blocked."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from _processes import hide_packages_source

BLOCKED = ("torch", "torchvision")

SCRIPT = textwrap.dedent(
    """
    from pathlib import Path

    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import block let torch through")
    sys.path.insert(0, {tests!r})

    import harness
    import _toy_plugin
    from harness.prepare import prepare_dataset

    source = _toy_plugin.write_toy_source(Path({work!r}) / "src")
    prepare_dataset("toy", source, progress=False)
    dataset = harness.load_dataset("toy", split="train")
    assert dataset[0]["image"].size == (2, 2)
    frame = harness.load_dataset("toy", split="test", format="polars")
    assert frame.height == 2

    from harness.cli import main
    sample = Path({work!r}) / "mot"
    assert main(["sample", "mot17", "--output", str(sample)]) == 0
    assert main(["prepare", "mot17", "--source", str(sample)]) == 0
    assert main(["eval", "mot17", "--tracker-dir", str(sample / "trackers" / "noisytracker"),
                 "--output", str(Path({work!r}) / "run")]) == 0
    assert harness.load_dataset("mot17", split="train", config="frames")[0]["image"].size
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    print("loaded:", ",".join(loaded) or "none")
    """
)


def test_harness_runs_without_torch(tmp_path: Path) -> None:
    script = hide_packages_source(set(BLOCKED)) + SCRIPT.format(
        tests=str(Path(__file__).parent), work=str(tmp_path))
    env = dict(os.environ, FIELDHARNESS_HOME=str(tmp_path / "home"))
    result = subprocess.run([sys.executable, "-c", script], env=env,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "loaded: none"
