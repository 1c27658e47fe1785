//! Tests of the Store API.
