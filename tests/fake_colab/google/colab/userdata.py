"""google.colab.userdata: secrets from FAKE_COLAB_SECRETS (JSON), never a prompt."""

import json
import os


class SecretNotFoundError(Exception):
    pass


def get(key):
    secrets = json.loads(os.environ.get("FAKE_COLAB_SECRETS", "{}"))
    if key not in secrets:
        raise SecretNotFoundError(f"Secret {key} does not exist.")
    return secrets[key]
