"""``python -m streaming_tar_compressor`` is the ``stc`` command."""

from .cli.main import main

raise SystemExit(main())
