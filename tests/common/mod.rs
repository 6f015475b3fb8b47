//! Shared test code: the store conformance suite, the store fixtures and the throwaway
//! PostgreSQL server. Each test binary uses a different part of it.
#![allow(dead_code, unreachable_pub)]

pub mod conformance;
pub mod counting;
pub mod flows;
#[cfg(feature = "webauthn")]
pub mod keys;
#[cfg(feature = "serde")]
pub mod legacy;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod stores;
pub mod tickets;
