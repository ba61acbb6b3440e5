#!/bin/sh
# Context for shopping-list: the ingredients of this week's recipes.
set -eu
while read -r recipe; do
  [ -n "$recipe" ] || continue
  echo "=== RECIPE: $recipe (Recipes/$recipe.md) ==="
  awk 'f && /^## [^I]/{exit} /^## Ingredients/{f=1} f' "Recipes/$recipe.md"
done < Meals/this-week.txt
