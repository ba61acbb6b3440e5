"""Read models folded from events. `projections.defaults.default_projections()` is what a bare store folds.

    with VaultStore(url) as store:
        runner = ProjectionRunner(store, default_projections())   # projections.runner, projections.defaults
        runner.catch_up()                      # fold what is new; cheap and lock-free when nothing is
        with store.engine.connect() as conn:
            rows = quality_table(conn)         # projections.quality; task_history, ledger_rows likewise

Nothing is imported here, so that a module of this package that needs only the standard library
(`projections.raw_read`) loads without SQLAlchemy.
"""
