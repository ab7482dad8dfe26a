"""Run a long, chatty command with its output in a log file and a few progress lines on screen.

    python tools/quiet.py --log .venv/install.log -- python -m pip install --group dev

What `make venv` runs pip with: pip prints a line or two per package (about 180 for the
template's tools); this prints one line per ten packages collected, the install step and the
result. On failure it prints the end of the log and where the rest is, and exits with the
command's exit code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

EVERY = 10  # packages per progress line
TAIL = 25  # log lines shown on failure


def progress(line: str, collected: int) -> tuple[str | None, int]:
    """The progress line to print for one line of pip's output (or None), and the new count."""
    if line.startswith("Collecting "):
        collected += 1
        return (f"  {collected} packages collected" if collected % EVERY == 0 else None), collected
    if line.startswith("Installing collected packages"):
        return f"  installing {collected} packages...", collected
    if line.startswith("Successfully installed"):
        return f"  installed {len(line.split()) - 2} packages", collected
    return None, collected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True, help="file that receives the command's whole output")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")

    args.log.parent.mkdir(parents=True, exist_ok=True)
    print(f"  (full output: {args.log})", flush=True)
    started = time.perf_counter()
    collected = 0
    with args.log.open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in process.stdout:
            log.write(line)
            shown, collected = progress(line, collected)
            if shown:
                print(shown, flush=True)
        code = process.wait()
    if code != 0:
        lines = args.log.read_text().splitlines()
        print("\n".join(lines[-TAIL:]), file=sys.stderr)
        what = " ".join(command[:4])
        print(f"error: {what} ... failed (exit code {code}); full output in {args.log}", file=sys.stderr)
        return code
    print(f"  done in {time.perf_counter() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
