"""The test suite: unit (pure), integration (real local services), e2e (the whole stack), infra, compat14."""
