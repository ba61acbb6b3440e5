#!/bin/sh
# Context for recipe-ideas: what is in the pantry and what we cooked lately.
set -eu
echo "=== Pantry/inventory.csv ==="
cat Pantry/inventory.csv
echo
echo "=== Meals/last-week.md ==="
cat Meals/last-week.md
