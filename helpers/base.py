"""The names of what the course's machinery (:mod:`coursehost`) provides, for notebooks to use.

Kept here, with no imports, so that ``helpers`` never imports the machinery.
"""

from __future__ import annotations

import os

BASE_REPO = "busybox"
BASE_TAG = "1.35"
#: The image every notebook starts from (built offline from Debian's busybox-static).
BASE_IMAGE = f"{BASE_REPO}:{BASE_TAG}"
#: The course registry's front (the daemons' Docker Hub mirror) listens on this port.
REGISTRY_PORT = int(os.environ.get("COURSE_REGISTRY_PORT", "5765"))
