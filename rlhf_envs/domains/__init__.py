"""The built-in domains, one folder each: data (YAML) plus a few hooks (``hooks.py``).

- ``customer_service``: the ABCD policy book (refunds, orders, accounts, shipping, ...);
- ``finance``: financial advice with know-your-customer and suitability rules;
- ``medical``: medical triage with red-flag screening and safety-netting;
- ``tiny``: a two-task library desk for tests and for reading.

A folder of your own with the same files is a domain too (``gymnasium.make(...,
domain="path/to/folder")``); ``rlhf_envs.simulation.domain`` documents the files and
``rlhf-envs check-domain`` checks one. Hooks import only the drawing helpers of
:mod:`rlhf_envs.simulation.sampling`.
"""
