#!/bin/sh
# Context for trip-planner: the notes for the next trip.
set -eu
echo "=== Trips/next.md ==="
cat Trips/next.md
