//! Black-box tests of the REST API: the real server on a free loopback port with a temporary
//! data directory, called over HTTP. One test binary, one module per concern.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod cards;
mod concurrency;
mod conformance;
mod credentials;
mod damage;
mod disk_full;
mod endpoints;
mod expiry;
mod history;
mod idempotency;
mod identity;
mod ledger;
mod limits;
mod pages;
mod partner_views;
mod permissions;
mod privacy;
mod problems;
mod readiness;
mod reports;
mod restart;
mod reversal;
mod security;
mod sheets;
mod sigkill;
mod sigterm;
mod spend_codes;
