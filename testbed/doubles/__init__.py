"""Responders that stand in for models: `flawed_models.FlawedModels` behaves like the seed's flawed small models
(reading prompts with `prompt_anatomy` and data files with `data_reading`), `attacker.Attacker` answers a
proposer's structured calls with crafted hostile deltas. Both plug into the servers of `testbed.servers`."""
