#!/bin/sh
# Context for grocery-restock: the latest purchases.
set -eu
echo "=== Finance/purchases.csv (latest) ==="
tail -n 6 Finance/purchases.csv
