//! Transparency log primitives for the timecredits ledger.
//!
//! Ledger entries are the records of an RFC 6962 Merkle tree, and the
//! ledger periodically seals the tree with a signed checkpoint. Anyone
//! holding a checkpoint can then demand proofs that an entry is in the log
//! and that a later log extends an earlier one, so the ledger cannot rewrite
//! history without being caught. The design and algorithms follow Go's
//! `golang.org/x/mod/sumdb/tlog` and `sumdb/note` (the Go checksum
//! database) and the C2SP specifications, so the formats interoperate with
//! that ecosystem.
//!
//! - [`merkle`]: the tree. Leaf and node hashing, the append-only
//!   stored-hash layout, [`merkle::Frontier`] for appending without reading
//!   back, and inclusion / consistency proofs that read `O(log n)` stored
//!   hashes in one batch.
//! - [`note`]: signed notes (c2sp.org/signed-note) with Ed25519 keys: key
//!   encodings, signing, and strict opening against a set of trusted keys.
//! - [`checkpoint`]: checkpoints (c2sp.org/tlog-checkpoint), the signed
//!   note stating a log's origin, size and root hash.
//! - [`proof`]: tlog-proofs (c2sp.org/tlog-proof), the self-contained
//!   receipt that one entry is included under a signed checkpoint.
//!
//! The crate does no I/O: storage plugs in through [`merkle::HashReader`].

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod merkle;
pub mod note;
pub mod proof;
