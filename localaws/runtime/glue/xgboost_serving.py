"""The XGBoost 3.2-0 image's `serve` in script mode: the one piece of the image not on PyPI.

The image installs the sagemaker_xgboost_container wheel, built from
aws/sagemaker-xgboost-container (src/sagemaker_xgboost_container/serving.py at commit
cb8df91cd44c7b01c53ccf321fd3fdf3eb78adae); it is not published to a package registry, so
this file reproduces its script-mode path, and only that, around the real
sagemaker-containers 2.8.6.post2 the image environment installs:

- `serving_entrypoint()` = serving.serving_entrypoint (OMP_NUM_THREADS=1 unless set), then
  sagemaker_containers/_server.py `start()`: the user module installed with the real
  `_modules.import_module` (copy to code_dir, generated setup.py, `python -m pip install .`),
  then gunicorn with the same arguments. One difference, said where it is made: the image
  puts nginx on port 8080 in front of gunicorn's unix socket (SAGEMAKER_USE_NGINX defaults
  to true); offline the local AWS plays nginx and connects to that socket itself.
- `main(environ, start_response)` = serving.main: import the user module, build the real
  `transformer.Transformer` from its functions (transform_fn excludes input/predict/output_fn),
  `initialize()` (model_fn), serve with the real `worker.Worker`.

The image's fallbacks for missing user functions (sagemaker_xgboost_container.encoder's
decode, predict with validate_features=False, encoders.encode) are not reproduced: a module
that relies on them is refused at start with that reason, rather than served differently.
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys

from sagemaker_containers.beta.framework import env, modules, transformer, worker

logging.basicConfig(format="%(asctime)s %(levelname)s - %(name)s - %(message)s", level=logging.INFO)  # as serving.py

SOCKET_NAME = "gunicorn.sock"  # _server.UNIX_SOCKET_BIND is unix:/tmp/gunicorn.sock in the image
NOT_REPRODUCED = ("input_fn", "predict_fn", "output_fn")

app = None


def socket_path() -> str:
    """Where gunicorn listens: this container's own directory (offline, /tmp is shared)."""
    return os.path.join(os.path.dirname(env.base_dir.rstrip("/")) or "/", SOCKET_NAME)


def _user_module_transformer(user_module) -> transformer.Transformer:
    model_fn = getattr(user_module, "model_fn", transformer.default_model_fn)
    functions = {name: getattr(user_module, name, None) for name in NOT_REPRODUCED}
    transform_fn = getattr(user_module, "transform_fn", None)
    if transform_fn and any(functions.values()):
        raise ValueError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
    if transform_fn is not None:
        return transformer.Transformer(model_fn=model_fn, transform_fn=transform_fn)
    missing = [name for name, function in functions.items() if function is None]
    if missing:
        raise RuntimeError(
            f"{user_module.__name__} relies on the image's default {', '.join(missing)}, which the local AWS "
            "does not reproduce (sagemaker_xgboost_container is not on PyPI): define them or a transform_fn"
        )
    return transformer.Transformer(model_fn=model_fn, **functions)


def main(environ, start_response):
    global app
    if app is None:
        serving_env = env.ServingEnv()
        if serving_env.module_name is None:
            raise RuntimeError("SAGEMAKER_PROGRAM is not set: algorithm mode is not served offline, only script mode")
        user_module = importlib.import_module(serving_env.module_name)
        user_module_transformer = _user_module_transformer(user_module)
        user_module_transformer.initialize()
        app = worker.Worker(transform_fn=user_module_transformer.transform, module_name=serving_env.module_name)
    return app(environ, start_response)


def serving_entrypoint() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    serving_env = env.ServingEnv()
    if serving_env.module_name:
        modules.import_module(serving_env.module_dir, serving_env.module_name)
    pythonpath = ",".join(sys.path + [env.code_dir])
    gunicorn = subprocess.Popen([
        "gunicorn",
        "--timeout", str(serving_env.model_server_timeout),
        "-k", "gevent",
        "--pythonpath", pythonpath,
        "-b", f"unix:{socket_path()}",
        "--worker-connections", str(1000 * serving_env.model_server_workers),
        "-w", str(serving_env.model_server_workers),
        "--log-level", "info",
        serving_env.framework_module,
    ])

    def terminate(signo, frame):  # _server._add_sigterm_handler
        try:
            os.kill(gunicorn.pid, signal.SIGTERM)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, terminate)
    sys.exit(gunicorn.wait())


if __name__ == "__main__":
    serving_entrypoint()
