"""The optional C extension; everything else about the package is in pyproject.toml.

``_native.c`` holds the measured hot paths of pack and unpack (README "Compiled hot paths").
``optional=True``: without a C compiler or Python's headers the install still succeeds, and
the Python twins of those paths run instead.
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
