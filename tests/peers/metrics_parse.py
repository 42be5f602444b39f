"""Scrapes a /metrics URL as a Prometheus client would and parses it with the parser of the
format the server says it answered in (Content-Type): the Python prometheus_client's
OpenMetrics parser for application/openmetrics-text, its Prometheus text 0.0.4 parser for
text/plain. Used by tests/metrics.rs.

    python metrics_parse.py URL ACCEPT

Prints JSON: {"content_type": ..., "families": [{"name", "type", "samples": [[name, labels,
value], ...]}, ...]}. A parse error is a traceback and exit status 1.
"""

import json
import math
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text


def main():
    url, accept = sys.argv[1], sys.argv[2]
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        content_type = response.headers.get("Content-Type", "")
        body = response.read().decode("utf-8")
    media = content_type.split(";")[0].strip().lower()
    if media == "application/openmetrics-text":
        families = parse_openmetrics(body)
    elif media == "text/plain":
        families = parse_text(body)
    else:
        raise SystemExit(f"unexpected Content-Type {content_type!r}")
    out = []
    for family in families:
        # JSON has no infinities: a non-finite value is written as its text.
        samples = [[s.name, s.labels, s.value if math.isfinite(s.value) else str(s.value)] for s in family.samples]
        out.append({"name": family.name, "type": family.type, "samples": samples})
    print(json.dumps({"content_type": content_type, "families": out}))


if __name__ == "__main__":
    main()
