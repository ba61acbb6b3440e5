#!/bin/sh
# Context for warranty-tracker: the appliances we bought.
set -eu
echo "=== Appliances/purchases.csv ==="
cat Appliances/purchases.csv
