"""Long fuzzing run (#9): 10,000 hypothesis examples per fuzz test in tests/test_fuzz.py.

Run: ``python bench/fuzz.py`` (about a few minutes on 2 cores). Prints pytest's outcome line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics"],
        cwd=ROOT,
        env={**os.environ, "VDBENCH_FUZZ_EXAMPLES": os.environ.get("VDBENCH_FUZZ_EXAMPLES", "10000")},
        capture_output=True,
        text=True,
        check=False,
    )
    print(proc.stdout[-4000:])
    print(f"10k-example fuzz run: exit {proc.returncode} in {time.perf_counter() - start:.0f}s")
    sys.exit(proc.returncode)
