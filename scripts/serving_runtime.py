"""The serving runtime without Docker: its lock, its image as a venv, and the proof that it loads the champion.

    make runtime-lock    # python scripts/serving_runtime.py lock: docker/serving-runtime.in -> .lock (package index)
    make runtime-venv    # python scripts/serving_runtime.py venv: the image's environment in .runtime-venv (cached)
    make runtime-proof   # python scripts/serving_runtime.py prove: load the champion as KServe and Seldon would

No Docker engine runs here, so the image docker/serving-runtime.Dockerfile is reproduced as a venv: the same Python
minor version, the same lock, the same environment variables and the same command (both read from the Dockerfile).
The proof then does what the cluster does, from a directory that is not the repository:

1. registers a champion if the workspace has none, and stages its version as the object store must hold it
   (``manifests.stage_model``: the MLflow model and MLServer's ``model-settings.json``);
2. **KServe**: copies it where the storage initializer puts ``storageUri`` (``/mnt/models``, here a folder), starts
   the image's command with the environment of the generated ``InferenceService`` (its ``env`` and the
   ``kserve-mlserver`` runtime's), and waits until the model is ready;
3. **Seldon Core 2**: copies it into a model repository as the agent does, starts the same command with the
   ``mlserver`` server config's settings (no model at start-up) and loads it through MLServer's repository API;
4. sends the same rows, encoded by MLServer's own ``PandasCodec`` in the runtime venv (an OIP v2 client), to both and
   to the course's service's ``/v2`` endpoint, and checks every answer equals the champion's predictions in the
   course environment, exactly.

It prints what it did and how long each step took, and exits non-zero if anything differs. A check CI runs once
(``.ci/run``), not a unit test: the first venv costs a few minutes of downloads, later ones come from pip's cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from mlops_helpers import REPO_ROOT, catchup, data, manifests, processes, workspace
from mlops_helpers.names import MODEL_NAME

DOCKERFILE = REPO_ROOT / "docker" / "serving-runtime.Dockerfile"
RUNTIME_IN = REPO_ROOT / "docker" / "serving-runtime.in"
RUNTIME_LOCK = REPO_ROOT / "docker" / "serving-runtime.lock"
VENV = REPO_ROOT / ".runtime-venv"
#: What KServe's kserve-mlserver ClusterServingRuntime sets (config/runtimes/kserve-mlserver.yaml, KServe 0.16).
KSERVE_RUNTIME_ENV = {"MLSERVER_HTTP_PORT": "8080", "MLSERVER_GRPC_PORT": "9000"}
#: What Seldon Core 2's mlserver ServerConfig sets for MLServer: models come and go through the agent.
SELDON_ENV = {"MLSERVER_LOAD_MODELS_AT_STARTUP": "false"}

#: The OIP client, run with the runtime's Python: MLServer's own codecs encode the rows and decode the answers.
CLIENT = """
import json, sys
import pandas as pd
import requests
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.types import InferenceResponse

rows, urls = json.load(open(sys.argv[1])), sys.argv[2:]
request = PandasCodec.encode_request(pd.DataFrame(rows))
body = json.loads(request.model_dump_json(exclude_none=True))
answers = {}
for url in urls:
    response = requests.post(url, json=body, timeout=60)
    response.raise_for_status()
    decoded = InferenceResponse.model_validate(response.json())
    answers[url] = NumpyCodec.decode_output(decoded.outputs[0]).reshape(-1).tolist()
print(json.dumps({"request": body, "answers": answers}))
"""


# ------------------------------------------------------------------------------------------------- the Dockerfile
def dockerfile() -> tuple[dict[str, str], list[str], str]:
    """``(ENV, CMD, Python minor version)`` of the runtime's Dockerfile; fails if it installs anything but the lock."""
    text = DOCKERFILE.read_text()
    logical = re.sub(r"\\\n\s*", " ", text)
    env: dict[str, str] = {}
    for line in logical.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line[4:])))
    command = json.loads(next(line[4:] for line in logical.splitlines() if line.startswith("CMD ")))
    python = re.search(r"^FROM python:(\d+\.\d+)", text, re.M).group(1)
    installs = re.findall(r"pip install ([^&\n]+)", logical)
    assert installs == ["-r /tmp/build/serving-runtime.lock "], f"the Dockerfile must install the lock only: {installs}"
    return env, command, python


# ------------------------------------------------------------------------------------------------ lock and venv
def run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], check=True, **kwargs)


def lock(python: str) -> None:
    """Resolve docker/serving-runtime.in into docker/serving-runtime.lock in a throw-away venv."""
    with tempfile.TemporaryDirectory() as tmp:
        run(python, "-m", "venv", f"{tmp}/venv")
        pip = [f"{tmp}/venv/bin/python", "-m", "pip"]
        run(*pip, "install", "--quiet", "--upgrade", "pip")
        run(*pip, "install", "--quiet", "-r", RUNTIME_IN)
        run(*pip, "check")
        frozen = run(*pip, "freeze", "--all", "--exclude", "pip", "--exclude", "setuptools", "--exclude", "wheel",
                     capture_output=True, text=True).stdout  # fmt: skip
        version = run(f"{tmp}/venv/bin/python", "--version", capture_output=True, text=True).stdout.strip()
    pins = sorted(frozen.split(), key=str.lower)
    header = (f"# Generated by `make runtime-lock` from docker/serving-runtime.in with {version}.\n"
              "# Do not edit by hand: change docker/serving-runtime.in, then run `make runtime-lock`.\n")  # fmt: skip
    RUNTIME_LOCK.write_text(header + "\n".join(pins) + "\n")
    print(f"{RUNTIME_LOCK.relative_to(REPO_ROOT)}: {len(pins)} pinned packages")


def interpreter(minor: str) -> str:
    """A Python of the image's minor version (python3.11 on PATH, or pyenv's)."""
    found = shutil.which(f"python{minor}")
    if found and run(found, "-c", "1", capture_output=True).returncode == 0:
        return found
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"))
    if not candidates:
        raise SystemExit(f"Python {minor} is needed for the runtime venv (the image's base): install it")
    return str(candidates[-1])


def build_venv(venv: Path = VENV) -> Path:
    """The image's environment as a venv; rebuilt only when the lock or the Python version changed."""
    _, _, minor = dockerfile()
    python = interpreter(minor)
    stamp = hashlib.sha256(RUNTIME_LOCK.read_bytes() + python.encode()).hexdigest()
    marker = venv / ".runtime-lock.sha256"
    if marker.exists() and marker.read_text() == stamp:
        print(f"{venv.name}: up to date with {RUNTIME_LOCK.name}")
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    started = time.perf_counter()
    run(python, "-m", "venv", venv)
    run(venv / "bin/python", "-m", "pip", "install", "--quiet", "-r", RUNTIME_LOCK)
    run(venv / "bin/python", "-m", "pip", "check")
    marker.write_text(stamp)
    print(f"{venv.name}: installed {RUNTIME_LOCK.name} in {time.perf_counter() - started:.0f} s")
    return venv


# ------------------------------------------------------------------------------------------------------ the proof
class Proof:
    """The steps of the proof, timed."""

    def __init__(self, root: Path, venv: Path) -> None:
        self.root, self.venv, self.timings = root, venv, {}
        self.image_env, self.command, _ = dockerfile()

    def step(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 1)
        print(f"  {name}: {self.timings[name]} s", flush=True)

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        """The pod's environment: the image's ENV, then ``extra``; on loopback, with the runtime venv on PATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
        env.pop("PYTHONPATH", None)
        env.update({k: v.strip('"') for k, v in self.image_env.items()})
        env.update(extra)
        env.update({"PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(self.venv),
                    "MLSERVER_HOST": processes.HOST, "MLSERVER_METRICS_PORT": str(processes.free_port()),
                    "MLSERVER_GRPC_PORT": str(processes.free_port())})  # fmt: skip
        return env

    def start(self, name: str, env: dict[str, str]) -> processes.Server:
        """The image's command, from an empty directory that is not the repository, until MLServer is live."""
        elsewhere = Path(tempfile.mkdtemp(prefix=f"{name}-cwd-"))
        port = processes.free_port()
        env = {**env, "MLSERVER_HTTP_PORT": str(port)}
        return processes.start(self.command, name=name, port=port, health_path="/v2/health/live", env=env,
                               cwd=elsewhere, timeout=180, log_dir=self.root / "logs")  # fmt: skip


def wait_model(url: str, name: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(f"{url}/v2/models/{name}/ready", timeout=5).status_code == 200:
            return
        time.sleep(0.5)
    raise SystemExit(f"model {name} not ready on {url} after {timeout:.0f} s")


def kserve(proof: Proof, staged: Path, isvc: dict) -> tuple[processes.Server, str]:
    """MLServer as KServe starts it for ``isvc``: the storage initializer's copy, the manifest's env."""
    started = time.perf_counter()
    mnt = proof.root / "kserve" / "mnt" / "models"
    shutil.rmtree(mnt.parent, ignore_errors=True)
    shutil.copytree(staged, mnt)
    model = isvc["spec"]["predictor"]["model"]
    env = {**KSERVE_RUNTIME_ENV, **{e["name"]: e["value"] for e in model["env"]}}
    env = {k: str(mnt) if v == "/mnt/models" else v for k, v in env.items()}  # the pod's /mnt/models, here
    server = proof.start("kserve-mlserver", proof.environment({**env, "MLSERVER_MODELS_DIR": str(mnt)}))
    name = isvc["metadata"]["name"]
    wait_model(server.url, name)
    proof.step("KServe: MLServer started, champion loaded", started)
    return server, f"{server.url}/v2/models/{name}/infer"


def seldon(proof: Proof, staged: Path, model: dict) -> tuple[processes.Server, str]:
    """MLServer as Seldon Core 2's agent drives it: a model repository, then the repository API's load."""
    started = time.perf_counter()
    repository = proof.root / "seldon" / "mnt" / "agent" / "models"
    shutil.rmtree(repository.parent, ignore_errors=True)
    internal = f"{model['metadata']['name']}_1"  # the agent's name for the Model's first artifact version
    shutil.copytree(staged, repository / internal)
    settings_path = repository / internal / "model-settings.json"
    settings = json.loads(settings_path.read_text())
    settings_path.write_text(json.dumps({**settings, "name": internal}))
    env = proof.environment({**SELDON_ENV, "MLSERVER_MODELS_DIR": str(repository)})
    server = proof.start("seldon-mlserver", env)
    loaded = requests.post(f"{server.url}/v2/repository/models/{internal}/load", timeout=180)
    if loaded.status_code != 200:
        server.stop()
        raise SystemExit(f"Seldon-style load failed: {loaded.status_code} {loaded.text[:500]}")
    wait_model(server.url, internal)
    proof.step("Seldon: MLServer started, champion loaded through the repository API", started)
    return server, f"{server.url}/v2/models/{internal}/infer"


def course_service(proof: Proof, uri: str) -> tuple[processes.Server, str]:
    """The course's own service, in the course's environment, for the same MLServer-encoded request."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "mlops_helpers.serving", "--model", uri, "--port", "{port}",
               "--log", str(proof.root / "course-service.jsonl")]  # fmt: skip
    server = processes.start(command, name="course-service", health_path="/health", timeout=120,
                             log_dir=proof.root / "logs")  # fmt: skip
    proof.step("course service started", started)
    return server, f"{server.url}/v2/models/{MODEL_NAME}/infer"


def prove(ws_root: Path, venv: Path, n_rows: int) -> int:
    import mlflow
    import numpy as np

    build_venv(venv)
    ws = workspace.setup(ws_root)
    proof = Proof(ws.root / "runtime-proof", venv)
    shutil.rmtree(proof.root, ignore_errors=True)
    proof.root.mkdir(parents=True)
    started = time.perf_counter()
    champion = catchup.ensure_champion(ws)
    version = str(champion.version)
    uri = f"models:/{MODEL_NAME}/{version}"
    X, _ = data.xy(data.window(data.load_bikes(), data.VALIDATION_START, data.TRAIN_WINDOW.end))
    rows = X.head(n_rows).reset_index(drop=True)
    expected = mlflow.pyfunc.load_model(uri).predict(rows)
    staged = manifests.stage_model(
        MODEL_NAME, version, proof.root / "storage" / manifests.k8s_name(MODEL_NAME) / version
    )
    isvc = manifests.inference_service(MODEL_NAME, champion, champion=version)
    (seldon_model,) = manifests.seldon_models(MODEL_NAME, [version])
    (proof.root / "manifests.yaml").write_text(manifests.to_yaml(isvc, seldon_model))
    proof.step(f"champion version {version} staged, manifests generated", started)

    servers, urls = [], []
    try:
        for launch, arg in ((kserve, isvc), (seldon, seldon_model)):
            server, url = launch(proof, staged, arg)
            servers.append(server)
            urls.append(url)
        server, url = course_service(proof, uri)
        servers.append(server)
        urls.append(url)
        started = time.perf_counter()
        rows_file = proof.root / "rows.json"
        rows_file.write_text(json.dumps(rows.to_dict("records")))
        done = run(venv / "bin/python", "-c", CLIENT, rows_file, *urls, capture_output=True, text=True,
                   env={**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"})  # fmt: skip
        result = json.loads(done.stdout)
        proof.step(f"{n_rows} rows sent with MLServer's PandasCodec to the three", started)
    finally:
        for server in servers:
            server.stop()
    names = ["KServe (MLServer runtime image)", "Seldon Core 2 (MLServer runtime image)", "course service /v2"]
    report = {"champion": version, "rows": n_rows, "timings_s": proof.timings, "differences": {}}
    for name, url in zip(names, urls, strict=True):
        got = np.asarray(result["answers"][url])
        report["differences"][name] = float(np.max(np.abs(got - expected)))
        same = got.shape == expected.shape and np.array_equal(got, expected)
        print(f"{'ok  ' if same else 'FAIL'} {name}: {len(got)} predictions, largest difference "
              f"{report['differences'][name]:.3g} from mlflow.pyfunc in the course environment")  # fmt: skip
        report.setdefault("failed", []).extend([] if same else [name])
    (proof.root / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {proof.root / 'report.json'}")
    return 1 if report["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lock", help="resolve docker/serving-runtime.in into its lock").add_argument(
        "--python", default=None, help="the interpreter to resolve with (default: the image's Python version)"
    )
    sub.add_parser("venv", help="the runtime image's environment as a venv (.runtime-venv)")
    proof = sub.add_parser("prove", help="load the champion with the runtime as KServe and Seldon would")
    proof.add_argument("--workspace", default=str(REPO_ROOT / "workspace" / "runtime-proof"))
    proof.add_argument("--rows", type=int, default=200, help="rows of March 2011 to predict (default 200)")
    args = parser.parse_args(argv)
    if args.command == "lock":
        lock(args.python or interpreter(dockerfile()[2]))
        return 0
    if args.command == "venv":
        build_venv()
        return 0
    return prove(Path(args.workspace), VENV, args.rows)


if __name__ == "__main__":
    sys.exit(main())
