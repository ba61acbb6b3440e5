#!/usr/bin/env python3
"""Context for subscription-audit: the newest bank transactions."""
import csv
import glob

rows = []
for path in sorted(glob.glob("Finance/bank/*.csv")):
    with open(path, newline="", encoding="utf-8") as f:
        rows.extend(csv.DictReader(f))
rows.sort(key=lambda r: r["date"], reverse=True)
print("=== Finance/bank (newest first) ===")
print("date | payee | amount")
for r in rows[:8]:  # one statement page
    print(f"{r['date']} | {r['payee']} | {r['amount']}")
