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
            depends=["src/learnlab/tasks/_hermite_trie_body.h", "src/learnlab/tasks/_hermite_trie_types.h"],
            # no a * b + c contracted into one rounding: every lane, level of code and CPU gets the same bits
            extra_compile_args=["-O3", "-std=gnu11", "-pthread", "-ffp-contract=off"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ]
)
