"""learnerprobe: proficiency probing and native-language identification on learner texts."""

__version__ = "0.1.0"

import os as _os

# oneDNN caches a kernel per distinct input shape; extraction feeds many shapes, and the
# default cache (1024 entries) made peak memory grow with the corpus. A small cache costs no speed.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")
