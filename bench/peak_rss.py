#!/usr/bin/env python3
"""Runs a command and prints its peak resident memory (MB) on the last line of stderr.

Usage: bench/peak_rss.py CMD [ARGS...]. The exit code is the command's."""
import resource
import subprocess
import sys

rc = subprocess.call(sys.argv[1:])
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"peak_rss_mb={peak_kb / 1024:.1f}", file=sys.stderr)
sys.exit(rc)
