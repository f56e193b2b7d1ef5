//! Benchmarks for steadfast; the library is empty. See `benches/` and the README for the
//! benchmarks and the figures measured.
