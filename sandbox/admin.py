"""POSTs to the sandbox endpoint's admin paths (`/_sandbox/...`), as the seeders make them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class SeedError(RuntimeError):
    pass


def post_admin(endpoint_url: str, path: str, payload: Any) -> Any:
    """POST `payload` as JSON to an admin path; its JSON answer, or SeedError naming the path."""
    request = urllib.request.Request(
        endpoint_url.rstrip("/") + path,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        raise SeedError(f"POST {path} answered {err.code}: {err.read().decode()}") from None
