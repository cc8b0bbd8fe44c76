"""The compiled part of learnlab: the CPU evaluator of many-term Hermite polynomials.

Optional: where no C compiler is found, learnlab installs without it and evaluates those
polynomials with PyTorch ops alone (``learnlab.tasks._polynomial_kernel.available()``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "learnlab.tasks._hermite_trie",
            sources=["src/learnlab/tasks/_hermite_trie.c"],
            depends=["src/learnlab/tasks/_hermite_trie_body.h"],
            extra_compile_args=["-O3", "-std=gnu11", "-pthread"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ]
)
