#!/usr/bin/env bash
echo "hack/demo.sh: not written yet" >&2; exit 1
