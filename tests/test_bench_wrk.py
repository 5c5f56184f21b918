"""The gateway benchmark reads wrk's report: figures, units and error counts."""

from __future__ import annotations

import pytest
from bench.wrk import parse_wrk

REPORT = """\
Running 8s test @ http://127.0.0.1:41234/bench
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.12ms  450.00us  12.34ms   90.00%
    Req/Sec    26.01k     1.20k   28.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    1.80ms
     99%    1.02s
  208000 requests in 8.00s, 40.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  25990.12
Transfer/sec:      5.00MB
"""


def test_figures_units_and_errors() -> None:
    sample = parse_wrk(REPORT)
    assert sample.rps == pytest.approx(25990.12)
    assert sample.p50_ms == pytest.approx(0.812)
    assert sample.p99_ms == pytest.approx(1020.0)
    assert sample.non_2xx == 7
    assert sample.socket_errors == 5
    assert sample.requests == 208000


def test_a_clean_run_has_no_errors() -> None:
    clean = "\n".join(
        line for line in REPORT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    sample = parse_wrk(clean)
    assert (sample.non_2xx, sample.socket_errors) == (0, 0)


def test_output_without_figures_is_refused() -> None:
    with pytest.raises(RuntimeError, match="unexpected wrk output"):
        parse_wrk("unable to connect to 127.0.0.1:9 Connection refused\n")
