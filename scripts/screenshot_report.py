"""Screenshot a run's report.html with headless Chromium.

    python scripts/screenshot_report.py runs/demo [--out report.png] [--width 1280] [--height 2000]

Needs Debian's `chromium` package (apt-get install chromium). Writes RUN_DIR/report.png by default.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(report: Path, png: Path, width: int = 1280, height: int = 2000) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
            f"--screenshot={png.resolve()}", report.resolve().as_uri(),
        ], check=True, capture_output=True, timeout=120)
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder holding report.html (runs/<name>)")
    parser.add_argument("--out", type=Path, help="PNG to write (default RUN_DIR/report.png)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args(argv)
    report = args.run_dir / "report.html"
    if not report.is_file():
        print(f"{report} not found: run `entigraph report CONFIG` first", file=sys.stderr)
        return 2
    print(screenshot(report, args.out or args.run_dir / "report.png", args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
