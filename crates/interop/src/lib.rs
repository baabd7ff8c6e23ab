//! Conformance tests against real peers live in `tests/`; this library holds their shared helpers.
