"""Every saved bench result (bench/out/bench_*.json) as one Markdown report: tables and exponents.

    .venv/bin/python bench/report.py > /tmp/figures.md
"""

from __future__ import annotations

import json

from common import OUT, format_exponents, format_table, load_measurements


def main() -> None:
    for path in sorted(OUT.glob("bench_*.json")):
        payload = json.loads(path.read_text())
        rows = payload["measurements"]
        measurements = load_measurements(rows)
        loads = sorted({round(row.get("load_average", float("nan")), 1) for row in rows})
        print(f"### {payload['script']}\n")
        print("```")
        print(format_table(measurements))
        exponents = format_exponents(measurements)
        if exponents:
            print()
            print(exponents)
        print("```")
        print(f"\nTaken {min(r.get('when', '?') for r in rows)} to {max(r.get('when', '?') for r in rows)}; "
              f"1-minute load average at the time: {', '.join(map(str, loads))} on {payload['cpus']} cores.\n")


if __name__ == "__main__":
    main()
