"""Shared driver for the harnesses: atheris when installed, a hypothesis fallback otherwise.

Each harness defines ``one_input(data: bytes) -> None``, which must only raise
for a real bug (a crash, an exception other than the parser's own error, or a
broken promise such as an unparseable protocol answer).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable


def main(one_input: Callable[[bytes], None], seeds: list[bytes]) -> None:
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    parser.add_argument("--runs", type=int, default=10_000, help="inputs to try (default 10000)")
    parser.add_argument("--seconds", type=int, default=0, help="stop after this many seconds (0: no limit)")
    import importlib.util

    default_engine = "atheris" if importlib.util.find_spec("atheris") else "hypothesis"
    parser.add_argument("--engine", choices=("atheris", "hypothesis"), default=default_engine,
                        help=f"fuzzing engine (default here: {default_engine})")
    options, rest = parser.parse_known_args()
    if options.engine == "atheris":
        import atheris

        def guarded(data: bytes) -> None:
            one_input(data)

        extra = [f"-runs={options.runs}"] + ([f"-max_total_time={options.seconds}"] if options.seconds else [])
        atheris.Setup([sys.argv[0], *rest, *extra], guarded)
        atheris.Fuzz()
        return
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    deadline = time.monotonic() + options.seconds if options.seconds else None

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 8))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
        return bytes(data[:cut] if cut is not None else data) + draw(st.binary(max_size=16))

    @settings(max_examples=options.runs, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.one_of(mutated(), st.binary(max_size=2048)))
    def run(data: bytes) -> None:
        if deadline is None or time.monotonic() < deadline:
            one_input(data)

    run()
