//! Fuzz target `connection`: see `shoal_fuzz::connection` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::connection(data));
