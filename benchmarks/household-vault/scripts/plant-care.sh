#!/bin/sh
# Context for plant-care: every plant with its needs and when it was last looked after.
set -eu
echo "=== Garden/plants.csv ==="
cat Garden/plants.csv
