"""Any nn.Module: graph capture, plan/apply, and learning-rate sweeps of user modules."""
