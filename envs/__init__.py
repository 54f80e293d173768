"""SpecGym environments; importing this package registers the ``SpecGym/...`` ids."""

import os

# Nothing may download weights at run time: transformers' adapter lookup makes hub requests
# even with local_files_only, so default the hub client to offline (override by setting it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
