#!/bin/sh
# Context for pantry-check: what we have and the least we always keep.
set -eu
echo "=== Pantry/inventory.csv ==="
cat Pantry/inventory.csv
