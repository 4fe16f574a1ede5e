"""The lab's client-facing service: a "transfer" API (app.py) run as two sites (sites.py)
behind HAProxy (lab.py), for drills/site-failover.yml and drills/upgrade-rollback.yml.

``python -m drdrill.lab.service`` is the control command the playbooks call (``ctl`` in
lab.env.json): ``start SITE --version V``, ``kill``, ``freeze``, ``thaw``, ``stop``,
``status``. Importing this package starts nothing.
"""
