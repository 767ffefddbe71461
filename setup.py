"""The optional C extension; everything else about the package is in pyproject.toml.

``_native.c`` runs the unpack's file operations without the GIL (README "Compiled file
operations"). ``optional=True``: without a C compiler or Python's headers the install still
succeeds, and fs/ops.py runs the same operations in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "streaming_tar_compressor._native",
            sources=["src/streaming_tar_compressor/_native.c"],
            extra_compile_args=["-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
