"""Build of tcplab's one compiled module, the analysis engine (docs/engine.md).

Everything else is in pyproject.toml; setuptools reads this file for the C
extension only, so ``pip install .`` and ``pip install -e .`` compile it with
the machine's C compiler and Python headers.  Nothing is downloaded.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tcplab.analyze._engine",
            ["src/tcplab/analyze/_engine.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-parameter"],
        )
    ]
)
