#!/usr/bin/env bash
echo "hack/bench.sh: not written yet" >&2; exit 1
