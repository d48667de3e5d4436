//! Members' profiles: the one store of personal data, kept apart from the ledger (which is
//! signed and never forgets) and from the registry (which is append-only), so that it can
//! forget.
//!
//! The file `profiles` in the data directory holds JSON records in the ledger's checksummed
//! journal format, each a member's whole profile as written (with the requests that wrote it,
//! so that a repeat is answered); a profile is the member's last record. A write is appended and
//! `fdatasync`ed before it is acknowledged; a torn tail a crash left is cut at the next start
//! (it was never acknowledged).
//!
//! # Forgetting
//! An erasure rewrites the file without the member: every other member's current profile is
//! written to `profiles.tmp`, synced, renamed over `profiles`, and the directory synced, so no
//! live file holds the erased member's data, nor any superseded value of anyone (a rewrite is
//! also a compaction). A start drops the profiles of members the registry records as erased (a
//! crash between an erasure's record and its rewrite) and compacts a file holding more
//! superseded records than live ones. Backups keep what they copied: see docs/privacy.md.
//!
//! # Limits
//! One record per write, each under 2 KiB (a profile's fields are bounded:
//! `timecredits_domain::profile`); the store is read whole into memory at start, and a rewrite
//! holds the file's live records in memory once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use timecredits_domain::profile::{AgeBand, Profile};
use timecredits_ledger::journal::{self, Journal, JournalError};
use timecredits_ledger::keys::write_private_file;
use uuid::Uuid;

use crate::registry::{io_error, journal_error, Previous, RegistryError, RequestRef};

/// Files of the profile store in the data directory.
pub mod layout {
    /// The profiles, one record per write.
    pub const PROFILES: &str = "profiles";
}

/// One record of the file: a member's whole profile, and the requests that wrote it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    account: Uuid,
    profile: Profile,
    requests: Vec<RequestRef>,
}

struct Inner {
    path: PathBuf,
    journal: Journal,
    /// Each member's current record (its requests: every one that wrote a profile).
    current: HashMap<Uuid, Record>,
    /// (actor, idempotency key) → (fingerprint, member), for repeats.
    requests: HashMap<(Uuid, String), (String, Uuid)>,
    /// Records in the file, live or superseded.
    records: usize,
    /// Why writes are refused until a restart, after an append that could not be undone.
    stopped: Option<String>,
}

/// The profile store.
pub struct ProfileStore {
    inner: Mutex<Inner>,
}

impl ProfileStore {
    /// Opens the store in `dir` (creating it empty), forgetting the profiles of members for
    /// whom `erased` is true and compacting a file that is mostly superseded records.
    pub fn open(dir: &Path, erased: impl Fn(Uuid) -> bool) -> Result<ProfileStore, RegistryError> {
        let path = dir.join(layout::PROFILES);
        let (journal, records) = Journal::open(&path, 0).map_err(|e| journal_error(&path, e))?;
        let mut inner = Inner {
            path: path.clone(),
            journal,
            current: HashMap::new(),
            requests: HashMap::new(),
            records: records.len(),
            stopped: None,
        };
        for (index, (_, payload)) in records.into_iter().enumerate() {
            let record: Record =
                serde_json::from_slice(&payload).map_err(|e| RegistryError::Damaged {
                    path: path.clone(),
                    reason: format!("record {index} is not a profile: {e}"),
                })?;
            inner.apply(record);
        }
        let unforgotten: Vec<Uuid> = inner
            .current
            .keys()
            .copied()
            .filter(|a| erased(*a))
            .collect();
        let mostly_superseded = inner.records > 2 * inner.current.len() + 64;
        if !unforgotten.is_empty() || mostly_superseded {
            for account in &unforgotten {
                inner.drop_member(*account);
            }
            inner.rewrite()?;
            tracing::info!(
                path = %path.display(),
                erased = unforgotten.len(),
                "rewrote the profile store without erased members and superseded profiles"
            );
        }
        Ok(ProfileStore {
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Member `account`'s profile, if one was written (and not erased).
    pub fn get(&self, account: Uuid) -> Option<Profile> {
        self.lock().current.get(&account).map(|r| r.profile.clone())
    }

    /// What an earlier profile write by (actor, key) did.
    pub fn previous(&self, actor: Uuid, key: &str, fingerprint: &str) -> Previous {
        match self.lock().requests.get(&(actor, key.to_owned())) {
            None => Previous::None,
            Some((f, id)) if f == fingerprint => Previous::Same(*id),
            Some(_) => Previous::Different,
        }
    }

    /// Whether a profile write by (actor, key) was made.
    pub fn knows(&self, actor: Uuid, key: &str) -> bool {
        self.lock().requests.contains_key(&(actor, key.to_owned()))
    }

    /// Writes member `account`'s whole profile durably, replacing the one before.
    pub fn put(
        &self,
        account: Uuid,
        profile: Profile,
        request: RequestRef,
    ) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        if let Some(reason) = &inner.stopped {
            return Err(RegistryError::Stopped(reason.clone()));
        }
        let record = Record {
            account,
            profile,
            requests: vec![request],
        };
        let payload = serde_json::to_vec(&record).expect("a profile always serializes");
        let path = inner.path.clone();
        let appended = inner.journal.append(&[&payload]);
        let synced = appended.and_then(|_| inner.journal.sync());
        if let Err(e) = synced {
            if !matches!(e, JournalError::NotAppended(_)) {
                // A partial record may be past the end: the next start cuts it.
                inner.stopped = Some(format!("an append to {} failed: {e}", path.display()));
            }
            return Err(journal_error(&path, e));
        }
        inner.records += 1;
        inner.apply(record);
        Ok(())
    }

    /// Forgets member `account`: the file is rewritten without their profile (see the module
    /// documentation). Returns whether there was anything to forget.
    pub fn forget(&self, account: Uuid) -> Result<bool, RegistryError> {
        let mut inner = self.lock();
        if !inner.current.contains_key(&account) {
            return Ok(false);
        }
        if let Some(reason) = &inner.stopped {
            return Err(RegistryError::Stopped(reason.clone()));
        }
        inner.drop_member(account);
        inner.rewrite()?;
        Ok(true)
    }

    /// The age band each member who consented to anonymous statistics may be counted in.
    pub fn statistics_bands(&self) -> HashMap<Uuid, AgeBand> {
        self.lock()
            .current
            .iter()
            .filter_map(|(account, r)| Some((*account, r.profile.statistics_band()?)))
            .collect()
    }
}

impl Inner {
    fn apply(&mut self, record: Record) {
        for r in &record.requests {
            self.requests.insert(
                (r.actor, r.key.clone()),
                (r.fingerprint.clone(), record.account),
            );
        }
        match self.current.get_mut(&record.account) {
            Some(current) => {
                current.requests.extend(record.requests);
                current.profile = record.profile;
            }
            None => {
                self.current.insert(record.account, record);
            }
        }
    }

    /// Drops a member from memory, and the requests that wrote their profile.
    fn drop_member(&mut self, account: Uuid) {
        if let Some(record) = self.current.remove(&account) {
            for r in record.requests {
                self.requests.remove(&(r.actor, r.key));
            }
        }
    }

    /// Replaces the file by one record per member: each current profile with all its requests.
    /// The new file is written beside the old one, synced, renamed into place and the directory
    /// synced; a crash leaves either file whole.
    fn rewrite(&mut self) -> Result<(), RegistryError> {
        let mut records: Vec<&Record> = self.current.values().collect();
        records.sort_by_key(|r| r.account);
        let payloads: Vec<Vec<u8>> = records
            .iter()
            .map(|r| serde_json::to_vec(r).expect("a profile always serializes"))
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let (bytes, _) = journal::encode(&refs, 0).map_err(|e| journal_error(&self.path, e))?;
        write_private_file(&self.path, &bytes).map_err(|e| io_error(&self.path, e))?;
        let (journal, _) = Journal::open(&self.path, bytes.len() as u64)
            .map_err(|e| journal_error(&self.path, e))?;
        self.journal = journal;
        self.records = payloads.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timecredits_domain::profile::Consent;

    fn request(key: &str) -> RequestRef {
        RequestRef {
            actor: Uuid::nil(),
            key: key.into(),
            fingerprint: key.into(),
        }
    }

    fn profile(name: &str) -> Profile {
        Profile::from_input(Some(name), None, Some("25_49"), None, Consent::default()).unwrap()
    }

    fn contains(dir: &Path, marker: &str) -> bool {
        let bytes = std::fs::read(dir.join(layout::PROFILES)).unwrap();
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
    }

    #[test]
    fn a_profile_survives_a_reopen_and_an_erasure_leaves_no_byte_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        {
            let store = ProfileStore::open(dir.path(), |_| false).unwrap();
            store.put(ada, profile("Ada-old"), request("1")).unwrap();
            store.put(ada, profile("Ada-marker"), request("2")).unwrap();
            store.put(bob, profile("Bob-marker"), request("3")).unwrap();
        }
        let store = ProfileStore::open(dir.path(), |_| false).unwrap();
        assert_eq!(store.get(ada), Some(profile("Ada-marker")));
        assert!(matches!(store.previous(Uuid::nil(), "1", "1"), Previous::Same(a) if a == ada));
        assert!(matches!(
            store.previous(Uuid::nil(), "1", "x"),
            Previous::Different
        ));
        assert!(contains(dir.path(), "Ada-old"));
        assert!(store.forget(ada).unwrap());
        assert!(!store.forget(ada).unwrap());
        // Gone from the live file: the erased profile and every superseded value.
        assert!(!contains(dir.path(), "Ada-marker") && !contains(dir.path(), "Ada-old"));
        assert!(contains(dir.path(), "Bob-marker"));
        assert_eq!(store.get(ada), None);
        assert!(!store.knows(Uuid::nil(), "2"));
        // Writes go on after the rewrite, and a reopen reads both.
        store.put(bob, profile("Bob-new"), request("4")).unwrap();
        drop(store);
        let store = ProfileStore::open(dir.path(), |_| false).unwrap();
        assert_eq!(store.get(bob), Some(profile("Bob-new")));
        assert!(store.knows(Uuid::nil(), "3"));
    }

    #[test]
    fn a_start_forgets_members_erased_in_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let ada = Uuid::now_v7();
        let store = ProfileStore::open(dir.path(), |_| false).unwrap();
        store.put(ada, profile("Ada-marker"), request("1")).unwrap();
        drop(store);
        // An erasure recorded, then a crash before the rewrite.
        let store = ProfileStore::open(dir.path(), |a| a == ada).unwrap();
        assert_eq!(store.get(ada), None);
        assert!(!contains(dir.path(), "Ada-marker"));
    }

    #[test]
    fn a_torn_tail_is_cut_and_only_consenting_members_have_a_band() {
        let dir = tempfile::tempdir().unwrap();
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let store = ProfileStore::open(dir.path(), |_| false).unwrap();
        let mut counted = profile("Ada");
        counted.consent.anonymous_statistics = true;
        store.put(ada, counted, request("1")).unwrap();
        store.put(bob, profile("Bob"), request("2")).unwrap();
        drop(store);
        let path = dir.path().join(layout::PROFILES);
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        let store = ProfileStore::open(dir.path(), |_| false).unwrap();
        assert_eq!(store.get(bob), None);
        assert_eq!(
            store.statistics_bands(),
            HashMap::from([(ada, AgeBand::From25To49)])
        );
    }
}
