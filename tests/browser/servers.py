"""Servers and a browser for the browser tests: JupyterLab and Voila on 127.0.0.1, headless Chromium.

Each server runs in its own process group with a temporary Jupyter config, data, runtime and
settings folder, so nothing of the user's Jupyter setup is read or written, and :meth:`Server.stop`
ends it and the kernels it started. Chromium is the distribution's (``apt-get install chromium``):
Playwright drives it through ``executable_path``, so Playwright's own browser download is never
needed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: Point this at a Chromium/Chrome binary when it is not on PATH as ``chromium``.
CHROMIUM_ENV = "ARCHSCALE_CHROMIUM"
#: Set to 1 (CI does) to fail instead of skip when no Chromium or Playwright is found.
REQUIRE_ENV = "ARCHSCALE_REQUIRE_BROWSER"
#: Flags for headless Chromium on a closed network, as root: no sandbox, no GPU, no background
#: traffic (without these Chromium keeps retrying Google services).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-default-apps", "--disable-extensions",
                 "--metrics-recording-only", "--mute-audio"]
#: JupyterLab user settings for a quiet, predictable page: no news or update prompts.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
}


def chromium_executable() -> str | None:
    """``$ARCHSCALE_CHROMIUM``, else the first of chromium, chromium-browser, google-chrome on PATH."""
    forced = os.environ.get(CHROMIUM_ENV)
    if forced:
        return forced if Path(forced).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jupyter_env(home: Path) -> dict[str, str]:
    """The environment for a server: private Jupyter folders, live widgets, no forced matplotlib backend."""
    env = dict(os.environ)
    for key in ("MPLBACKEND", "ARCHSCALE_STATIC_WIDGETS", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        env.pop(key, None)
    dirs = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython", "ARCHSCALE_FIGURES_DIR": "figures"}
    for key, name in dirs.items():
        (home / name).mkdir(parents=True, exist_ok=True)
        env[key] = str(home / name)
    for rel, settings in LAB_SETTINGS.items():
        path = home / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Server:
    """A Jupyter server process (its own process group) logging to a file, stopped with :meth:`stop`."""

    def __init__(self, argv: list[str], url: str, env: dict[str, str], log: Path, cwd: Path):
        self.url, self.log = url, log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @classmethod
    def lab(cls, root: Path, home: Path) -> Server:
        """JupyterLab on 127.0.0.1 serving ``root``, with a random token; allowed to run as root."""
        port, token = free_port(), secrets.token_hex(16)
        argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={token}", "--allow-root"]
        server = cls(argv, f"http://127.0.0.1:{port}", jupyter_env(home), home / "lab.log", root)
        server.token = token
        return server

    @classmethod
    def voila(cls, notebook: Path, home: Path) -> Server:
        """Voila serving one notebook (the app view) on 127.0.0.1."""
        port = free_port()
        argv = [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
                "--Voila.ip=127.0.0.1", "--show_tracebacks=True", "--theme=light"]
        server = cls(argv, f"http://127.0.0.1:{port}", jupyter_env(home), home / "voila.log", notebook.parent)
        server.token = ""
        return server

    def wait_ready(self, path: str, timeout: float = 90.0) -> None:
        """Poll ``path`` until it answers 200; raise with the log's tail if the server dies or stalls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        self._log_file.flush()
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        """SIGTERM the server's process group (kernels included), SIGKILL what is left after 10 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._log_file.close()
