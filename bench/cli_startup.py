"""How long `trials --help` takes, over repeated runs (the target is under half a second).

Run: .venv/bin/python bench/cli_startup.py [runs]
"""

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main(runs: int) -> None:
    exe = shutil.which("trials") or str(Path(sys.executable).with_name("trials"))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([exe, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(
        f"trials --help over {runs} runs: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
