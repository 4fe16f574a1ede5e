"""The joint industry exercise: one manifest (id, window, shared T0, participants' public
keys, common checks), results signed by each participant's own key, and one merged report
built offline from the result files alone (no server)."""
