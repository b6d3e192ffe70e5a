"""A local Cloud Storage emulator for the tests (``gcp-storage-emulator`` from PyPI), started as
a subprocess on a free localhost port with its own storage folder, and the environment that
points each client at it. Nothing here reaches the network beyond localhost.

Which client reaches the emulator, and how:

- ``google-cloud-storage`` (the bucket lock): ``STORAGE_EMULATOR_HOST``, anonymous credentials
  (the client picks them itself when that variable is set);
- ``gcsfs`` (``etils.epath``'s fsspec backend): ``STORAGE_EMULATOR_HOST``, the anonymous token
  and no listings cache (``FSSPEC_GCS``: a cached listing does not see what another client or
  process wrote since, e.g. Orbax deleting a save cut short); ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=
  false`` keeps it from asking the Storage Control API (gRPC, 60 s time-outs) what kind of
  bucket it is;
- TensorStore (Orbax's array writes): ``TENSORSTORE_GCS_HTTP_URL`` and a fixed bearer token
  (``GOOGLE_AUTH_TOKEN_FOR_TESTING``), which the emulator does not check;
- TensorFlow's own GCS file system (``tf.io.gfile``, which ``etils.epath`` uses for ``gs://``
  when TensorFlow is installed, and TFDS and ``tf.data`` read through) has its endpoint
  (``https://www.googleapis.com/storage/v1/``) compiled in and no variable to change it: it
  cannot be pointed at an emulator, so the tests set ``EPATH_USE_TF=false`` and every path of
  ours goes through gcsfs instead.

One gap of the emulator is filled here: its downloads carry no ``x-goog-generation`` header,
which real Cloud Storage sends and TensorStore reads (without it, Orbax's OCDBT manifest is
re-read with a generation of 0 and fails as "Malformed StorageGeneration"). Run as
``python -m tests.gcs_emulator STORAGE PORT``, this module serves the emulator with that header
added from the object's own record. Another gap is left, and said where it matters: the
emulator ignores preconditions (``ifGenerationMatch``), so a create-if-absent race is not
exercised by these tests.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BUCKET = "bucket"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def environment(port: int) -> dict[str, str]:
    """The variables that point every client of ours at the emulator on ``port``."""
    url = f"http://localhost:{port}"
    gcsfs = json.dumps({"token": "anon", "use_listings_cache": False})
    return {"STORAGE_EMULATOR_HOST": url, "EPATH_USE_TF": "false", "FSSPEC_GCS": gcsfs,
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "TENSORSTORE_GCS_HTTP_URL": url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator", "GOOGLE_CLOUD_PROJECT": "test"}


class Emulator:
    """The emulator as a subprocess holding its objects under ``storage``, with ``BUCKET`` made."""

    def __init__(self, storage: str, port: int | None = None):
        self.storage, self.port = storage, port or free_port()
        self.url = f"http://localhost:{self.port}"
        self.log = storage.rstrip("/") + ".log"
        self._process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> "Emulator":
        command = [sys.executable, "-m", "tests.gcs_emulator", self.storage, str(self.port)]
        with open(self.log, "wb") as log:  # (a pipe nobody reads would fill and stall it)
            self._process = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self._process.poll() is not None:
                with open(self.log) as log:
                    raise RuntimeError(f"The GCS emulator exited: {log.read()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b/{BUCKET}", timeout=2).close()
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"The GCS emulator did not answer on {self.url} within {timeout_s} s.")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)
        self._process = None


def _serve(storage: str, port: int) -> None:
    """Serves the emulator on localhost:``port`` with downloads that name their generation."""
    from gcp_storage_emulator.handlers import objects  # noqa: PLC0415 - only in the server process

    download = objects.download

    def download_with_generation(request, response, storage, *args, **kwargs):
        download(request, response, storage, *args, **kwargs)
        try:
            record = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except Exception:  # noqa: BLE001 - no such object: the download said so already
            return
        response["x-goog-generation"] = str(record["generation"])
        response["x-goog-metageneration"] = str(record["metageneration"])

    objects.download = download_with_generation  # (before the server module builds its routes)
    from gcp_storage_emulator.server import create_server  # noqa: PLC0415 - after the line above

    create_server("localhost", port, in_memory=False, default_bucket=BUCKET, data_dir=storage).run()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
