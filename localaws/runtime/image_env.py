"""The XGBoost 3.2-0 image's Python environment, offline, and containers started from it.

The built-in XGBoost image (aws/deep-learning-containers `docker/xgboost`) is Python 3.12
with pinned packages in /opt/venv. Offline, `make setup` builds the same packages at the
same versions into `.image-env/` (see image-requirements.txt), applies the image's patch to
sagemaker-containers, and every container-side piece of the lab runs there: the serving
stack (runtime/endpoints.py) and the Processing jobs (sagemaker/jobs.py). So a pandas,
numpy or pip difference between the kit's venv and the image fails offline first.

A container gets only what SageMaker gives it: the image's environment variables, the
job's or model's Environment, no host pip configuration, and, with network isolation, no
network at all (`unshare --net`, where the machine allows it).
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE_DIR = ROOT / ".image-env" / "xgboost-3.2-0"
PYTHON_VERSION = "3.12"
REQUIREMENTS = HERE / "image-requirements.txt"
NO_DEPS = HERE / "image-nodeps.txt"
GLUE = HERE / "glue"  # what the image has but no package registry does (see glue/)
MARKER = IMAGE_DIR / ".installed"

# The image's ENV lines (docker/xgboost/Dockerfile), minus the CUDA library path.
IMAGE_ENVIRONMENT = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "utf-8",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "SM_MODEL_DIR": "/opt/ml/model",
    "SAGEMAKER_TRAINING_MODULE": "sagemaker_xgboost_container.training:main",
    "SAGEMAKER_SERVING_MODULE": "sagemaker_xgboost_container.serving:main",
}


class ImageEnvironmentMissing(RuntimeError):
    """The image environment is not built; str() says how to build it."""


def site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{PYTHON_VERSION}" / "site-packages"


def image_python() -> Path:
    """The image's python3 (/opt/venv/bin/python3 in the image)."""
    python = IMAGE_DIR / "bin" / "python3"
    if not MARKER.exists() or not python.exists():
        raise ImageEnvironmentMissing(
            f"the XGBoost 3.2-0 image environment is not built ({IMAGE_DIR.relative_to(ROOT)}): run `make setup`"
        )
    return python


def container_environment(environment: dict[str, str], opt_ml: Path | None = None) -> dict[str, str]:
    """The variables a container process sees: the image's, then the job's or model's own.

    Nothing of the caller's environment leaks in (no credentials, no PIP_* or pip.conf of
    this machine: pip in the image has no configuration). `opt_ml` is where this
    container's /opt/ml lives offline; sagemaker-containers reads it from SAGEMAKER_BASE_DIR
    (its documented way to run outside SageMaker) and the kit's jobs from FRAUDLAB_OPT_ML."""
    env = {
        **IMAGE_ENVIRONMENT,
        "PATH": f"{IMAGE_DIR / 'bin'}:/usr/local/bin:/usr/bin:/bin",  # the image's PATH
        "HOME": str(opt_ml.parent if opt_ml else IMAGE_DIR),
        "PIP_CONFIG_FILE": os.devnull,
        **environment,
    }
    if opt_ml is not None:
        env["SAGEMAKER_BASE_DIR"] = env["FRAUDLAB_OPT_ML"] = str(opt_ml)
        env = {key: _in_opt_ml(value, opt_ml) for key, value in env.items()}
    return env


def _in_opt_ml(value: str, opt_ml: Path) -> str:
    """/opt/ml/... in a variable (SAGEMAKER_SUBMIT_DIRECTORY, SM_MODEL_DIR) -> this container's copy."""
    return str(opt_ml) + value[len("/opt/ml"):] if value == "/opt/ml" or value.startswith("/opt/ml/") else value


def writable_layer(directory: Path) -> Path:
    """A container's own Python prefix on top of the image, like a container's writable layer.

    Script mode runs `python -m pip install .` into "the executing Python environment": in
    SageMaker that is the container's copy of /opt/venv; offline it is this prefix, which
    sees the image's packages through a .pth file and takes what is installed, so the shared
    image environment is never modified. Returns its python."""
    subprocess.run([str(image_python()), "-m", "venv", "--without-pip", str(directory)], check=True)
    # addsitedir, not a plain path line: the image's own .pth files must run too
    # (setuptools' distutils-precedence.pth gives Python 3.12 the `distutils` sagemaker-containers imports).
    (site_packages(directory) / "_image.pth").write_text(f"import site; site.addsitedir({str(site_packages(IMAGE_DIR))!r})\n")
    return directory / "bin" / "python3"


@functools.cache
def network_sandbox() -> tuple[list[str], str | None]:
    """(command prefix that runs a process with no network, None) or ([], why not).

    `unshare --net` gives the process a network namespace of its own with no interface up:
    what a container with EnableNetworkIsolation has. As root it needs nothing more; other
    users need unprivileged user namespaces (--map-root-user)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return [], "`unshare` (util-linux) is not installed"
    tried = []
    for prefix in ([unshare, "--net"], [unshare, "--net", "--map-root-user"]):
        result = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if result.returncode == 0:
            return prefix, None
        tried.append(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}")
    return [], f"`unshare --net` is not permitted here ({tried[-1]})"


def find_python(requested: str | None) -> str | None:
    """A working Python 3.12: `requested`, else python3.12 on PATH, else a pyenv install."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [requested] if requested else [
        f"python{PYTHON_VERSION}",
        *sorted(str(p) for p in pyenv_root.glob(f"versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}")),
    ]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found is None:
            continue
        # A pyenv shim exists on PATH even where its version is not selected: ask, don't trust.
        version = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
        if version.returncode == 0 and version.stdout.strip() == PYTHON_VERSION:
            return found
    return None


def build(requested: str | None) -> int:
    """Create the image environment with a Python 3.12; rebuilt whenever the pins change."""
    found = find_python(requested)
    if found is None:
        print(
            f"The XGBoost 3.2-0 image runs Python {PYTHON_VERSION}, not found here: install it "
            f"(`pyenv install {PYTHON_VERSION}` or `apt install python{PYTHON_VERSION}-venv`) or pass PYTHON312=/path/to/python{PYTHON_VERSION} to make.",
            file=sys.stderr,
        )
        return 1
    shutil.rmtree(IMAGE_DIR, ignore_errors=True)
    subprocess.run([found, "-m", "venv", str(IMAGE_DIR)], check=True)
    pip = [str(IMAGE_DIR / "bin" / "python3"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    subprocess.run([*pip, "--no-deps", "-r", str(NO_DEPS)], check=True)
    _patch_collections_abc()
    MARKER.write_text(REQUIREMENTS.read_text() + NO_DEPS.read_text())
    print(f"image environment ready: {IMAGE_DIR.relative_to(ROOT)} (Python {PYTHON_VERSION}, XGBoost 3.2-0 pins)")
    return 0


def _patch_collections_abc() -> None:
    """The image's own patch (docker/xgboost/Dockerfile): sed 's/collections\\.Mapping/collections.abc.Mapping/g'
    on sagemaker_containers/_mapping.py, which otherwise fails to import on Python 3.10+."""
    mapping = site_packages(IMAGE_DIR) / "sagemaker_containers" / "_mapping.py"
    mapping.write_text(re.sub(r"collections\.Mapping", "collections.abc.Mapping", mapping.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the XGBoost 3.2-0 image environment (.image-env/).")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--python", help=f"a Python {PYTHON_VERSION} interpreter (default: python{PYTHON_VERSION} on PATH, else pyenv's)")
    args = parser.parse_args(argv)
    return build(args.python)


if __name__ == "__main__":
    sys.exit(main())
