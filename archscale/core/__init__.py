"""Pure math, no torch: graphs, the scaling rules, the laws, residual math, derivations, argument
checks, error types and the result-row schema."""
