"""Build of tcplab's compiled modules: the analysis engine (docs/engine.md) and
the per-socket loops of ``tcplab sockets`` (src/tcplab/sockets/_diag.c).

Everything else is in pyproject.toml; setuptools reads this file for the C
extensions only, so ``pip install .`` and ``pip install -e .`` compile them with
the machine's C compiler and Python headers.  Nothing is downloaded.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tcplab.analyze._engine",
            ["src/tcplab/analyze/_engine.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-parameter"],
        ),
        Extension(
            "tcplab.sockets._diag",
            ["src/tcplab/sockets/_diag.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-parameter"],
        ),
    ]
)
