#!/bin/sh
# Context for meal-plan: the recipe index and what we ate last week.
set -eu
echo "=== Meals/recipes.csv ==="
cat Meals/recipes.csv
echo
echo "=== Meals/last-week.md ==="
cat Meals/last-week.md
