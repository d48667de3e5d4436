//! A full disk refuses writes with 503 `storage_full` and `Retry-After`, changes nothing, says so
//! in `/readyz`, and writes resume by themselves once there is room, without a restart.
//!
//! The data directory is a small tmpfs of its own, filled up by the test. Mounting one needs root
//! (as on the project's machines and CI); elsewhere the test says so and checks nothing more.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use timecredits_tests::client::{new_key, Api};
use timecredits_tests::server::TestServer;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| SmallDisk(dir.to_owned()))
    }

    /// Fills the disk with one file and returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).expect("creates the filler");
        let block = vec![0xa5u8; 64 * 1024];
        loop {
            if file.write_all(&block).is_err() {
                break;
            }
        }
        // Whatever a partial block left: the last bytes too.
        while file.write_all(&block[..512]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_writes_cleanly_and_they_resume_when_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(dir.path(), "24m") else {
        println!("skipping the disk-full test: a tmpfs cannot be mounted here (needs root)");
        return;
    };
    let mut server = TestServer::start_in(dir, |_| {});
    let api = Api::new(server.base());
    let admin = server.admin_key().to_owned();
    let partner = api
        .create_partner(&admin, "Full Disk Club", &["earn"])
        .await;
    api.allocate(&admin, partner.id, 600).await;
    let member = api.register_member(&partner.key).await;
    api.earn(&partner.key, member.id, 60).await;
    // Let the state store's background flush (every second) write what it holds, so that the
    // first write to meet the full disk is a new one.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let size = api.ledger_size().await;

    let filler = disk.fill();
    let key = new_key();
    // Fifty entries need more than the page of the journal's file that the last write began.
    let item = json!({"member_id": member.id, "minutes": 1, "activity": "gardening"});
    let body = json!({"items": vec![item; 50]});
    let refused = api
        .post_keyed("/v1/earn/batch", Some(&partner.key), &key, Some(&body))
        .await;
    refused.assert_problem(503, "storage_full");
    assert!(
        refused.header("retry-after").is_some(),
        "Retry-After is set"
    );
    let ready = api.get("/readyz", None).await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.text.contains("full"), "{}", ready.text);
    assert_eq!(
        api.balance(&admin, member.id).await,
        60,
        "nothing was written"
    );

    std::fs::remove_file(filler).unwrap();
    let accepted = api
        .post_keyed("/v1/earn/batch", Some(&partner.key), &key, Some(&body))
        .await;
    accepted.expect(201);
    assert!(
        !accepted.replayed(),
        "the refused request was not remembered"
    );
    assert_eq!(api.get("/readyz", None).await.status, 200);
    assert_eq!(api.balance(&admin, member.id).await, 110);
    assert_eq!(api.ledger_size().await, size + 50);

    server.restart();
    let api = Api::new(server.base());
    assert_eq!(
        api.balance(&admin, member.id).await,
        110,
        "after a restart too"
    );
    drop(server);
    drop(disk);
}
