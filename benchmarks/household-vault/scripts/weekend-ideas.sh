#!/bin/sh
# Context for weekend-ideas: local events and places.
set -eu
echo "=== Weekend/events.csv ==="
cat Weekend/events.csv
