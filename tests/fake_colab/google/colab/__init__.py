"""A stand-in for Colab's `google.colab` package, for the simulated Colab of tests/test_colab.py.

The kernel imports it at start (an IPython startup file), as Colab does, so `"google.colab" in
sys.modules` holds in the notebooks. What it simulates, from environment variables the test sets:

    drive     mount / flush_and_unmount over a folder of the test (FAKE_COLAB_DRIVE, "Google Drive"),
              and a scripted drop mid-run (FAKE_COLAB_DRIVE_DROP)
    userdata  secrets from FAKE_COLAB_SECRETS (JSON); SecretNotFoundError otherwise
    files     upload() returns FAKE_COLAB_UPLOAD (a file path) or nothing; download() records the path
    output    enable_custom_widget_manager() records the call

Every call is appended to FAKE_COLAB_LOG (JSON lines), for the test to read. FAKE_COLAB_HOSTNAME gives
the runtime another host name where the test cannot give its kernel a UTS namespace of its own.
"""

import json
import os
import socket

if os.environ.get("FAKE_COLAB_HOSTNAME"):
    socket.gethostname = lambda: os.environ["FAKE_COLAB_HOSTNAME"]


def log(event: str, **details) -> None:
    path = os.environ.get("FAKE_COLAB_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"event": event, **details}) + "\n")
