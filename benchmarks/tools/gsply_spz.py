"""SPZ through gsply (PyPI), for ``bench_formats.py``; runs in gsply's own environment (``make bench-tools``).

    python gsply_spz.py encode IN.ply OUT.spz VERSION
    python gsply_spz.py decode IN.spz OUT.ply

Prints the seconds of the operation, in process, as JSON: the second of two runs, so that Numba's
one-time compilation is not counted (it is reported separately as ``first_s``).
"""

import json
import sys
import time

import gsply


def main() -> None:
    action, source, target = sys.argv[1:4]
    if action == "encode":
        data = gsply.plyread(source)

        def operation() -> None:
            gsply.write_spz(target, data, version=int(sys.argv[4]))
    else:

        def operation() -> None:
            gsply.plywrite(target, gsply.read_spz(source))

    times = []
    for _ in range(2):
        started = time.perf_counter()
        operation()
        times.append(time.perf_counter() - started)
    print(json.dumps({"seconds": times[1], "first_s": times[0], "gsply": gsply.__version__}))


main()
