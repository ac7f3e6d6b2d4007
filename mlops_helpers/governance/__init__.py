"""Governance: the questions an auditor asks about a model in production, answered from what is recorded (notebook 10).

| module | answers |
|---|---|
| ``lineage`` | where did it come from, where did it go? (data -> dataset -> run -> version -> aliases -> services) |
| ``card`` | what is it for, what was it trained on, how good is it and where does it fail? (a model card) |
| ``reproducibility`` | can we build it again? (retrain from the logged parameters and data, compare predictions) |

Who moved which alias, when and why, and whether anything moved around the tools, is the registry's audit trail
(:meth:`mlops_helpers.registry.Registry.check`). Command line, for CI or a nightly job::

    python -m mlops_helpers.governance audit [--model-name NAME] [--since N] [--strict]
    python -m mlops_helpers.governance lineage|card|reproduce [--version champion]
"""
