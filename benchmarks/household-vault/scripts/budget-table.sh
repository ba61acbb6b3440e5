#!/bin/sh
# Context for budget-table: this month's budget and spending per category.
set -eu
echo "=== Finance/budget.csv ==="
cat Finance/budget.csv
