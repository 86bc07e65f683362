"""The one thing pyproject.toml cannot say: the optional C send loop (relay/media/_sendloop.c).

``optional=True``: where no C compiler or Python headers are found, the install goes on and the
fan-out uses its pure-Python loop (relay/media/fanout.py ``send_frame``) instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "relay.media._sendloop",
            ["relay/media/_sendloop.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
