//! Black-box tests of the REST API: the real server on a free loopback port with a temporary
//! data directory, called over HTTP. One test binary, one module per concern.

mod concurrency;
mod conformance;
mod endpoints;
mod history;
mod idempotency;
mod ledger;
mod limits;
mod permissions;
mod problems;
mod restart;
mod reversal;
mod security;
mod sigkill;
mod spend_codes;
