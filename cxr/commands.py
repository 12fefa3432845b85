"""Running things: a stage's entry function, dvc with this interpreter, lscpu."""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxr import CxrError


def run_dvc(*args: str, cwd: str | Path | None = None, capture: bool = True) -> str:
    """stdout of `dvc ARGS` run with this interpreter (`capture=False`: shown as it runs, for
    `dvc repro`); a failure becomes a CxrError."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd,
                          capture_output=capture, text=True)
    if proc.returncode != 0:
        detail = proc.stderr.strip()[-2000:] if capture else "see its output above"
        raise CxrError(f"`dvc {' '.join(args)}` failed: {detail}")
    return proc.stdout or ""


def run_stage(main: Callable[[], Any]) -> None:
    """Run a stage's entry function; a CxrError ends it with the message and exit code 2."""
    try:
        main()
    except CxrError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def processor() -> str:
    """`lscpu`'s model name and whether it computes bfloat16 natively (what changes results)."""
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        info = ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("Model name")), platform.processor() or platform.machine())
    native = any(flag in info for flag in ("avx512_bf16", "amx_bf16"))
    return f"{name} ({'native' if native else 'no native'} bf16)"
