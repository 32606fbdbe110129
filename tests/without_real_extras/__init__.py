"""`env()`: the environment of a subprocess that cannot import the real-model extras (see sitecustomize.py here)."""
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def env() -> dict:
    root = HERE.parents[1]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(root), os.environ.get("PYTHONPATH", "")])}
