//! The real server for black-box tests: in this process on its own thread (an actix System), or
//! as a child process that a test may SIGKILL. Either listens on a free loopback port and keeps
//! its data in a directory the test owns, so it can be stopped and started again on the same data.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use timecredits_server::registry::layout;
use timecredits_server::{Settings, StartError};

/// How long a restart waits for the previous server to let go of the data directory (its worker
/// threads drop the application state, and so close the ledger, shortly after it stops).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of a test server: a free loopback port, two HTTP workers, no rate limits, and no
/// signal handling (the test process's signals are not the server's).
pub fn test_settings(dir: &Path) -> Settings {
    let mut settings = Settings::new(dir, SocketAddr::from(([127, 0, 0, 1], 0)));
    settings.workers = 2;
    settings.handle_signals = false;
    // Tests send many requests from one address with one key; `limits.rs` tests the limits.
    settings.limits = timecredits_server::limits::Limits::unthrottled();
    settings
}

/// The administrator API key the server wrote into its data directory on first start.
pub fn read_admin_key(dir: &Path) -> String {
    let path = dir.join(layout::ADMIN_API_KEY);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the server wrote no {}: {e}", path.display()))
        .trim()
        .to_owned()
}

struct Running {
    handle: ServerHandle,
    thread: JoinHandle<()>,
}

/// The service running in this process, in a thread of its own.
pub struct TestServer {
    base: String,
    admin_key: String,
    settings: Settings,
    running: Option<Running>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with the test settings on a new temporary data directory.
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// Starts a server after `adjust` has changed the test settings (e.g. the reversal window).
    pub fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary data directory");
        TestServer::start_in(dir, adjust)
    }

    /// [`TestServer::start_with`] on a data directory the test prepared (say, a small file
    /// system of its own).
    pub fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let mut settings = test_settings(dir.path());
        adjust(&mut settings);
        settings.data_dir = dir.path().to_owned();
        let (addr, running) = launch(&settings).expect("the server starts");
        TestServer {
            base: format!("http://{addr}"),
            admin_key: read_admin_key(dir.path()),
            settings,
            running: Some(running),
            dir,
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:40123` (it changes at a restart).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The first administrator's API key.
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// The server's data directory (removed when the server is dropped).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server gracefully and waits for its thread. Stopping a stopped server does
    /// nothing.
    pub fn stop(&mut self) {
        if let Some(Running { handle, thread }) = self.running.take() {
            // The stop command is sent when `stop` is called; its future only reports completion,
            // which joining the thread waits for anyway.
            drop(handle.stop(true));
            thread.join().expect("the server thread ends cleanly");
        }
    }

    /// Stops the server and starts it again on the same data directory, on a new free port.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("the server does not start again on its data: {e}");
        }
    }

    /// Stops the server and tries to start it again on the same data directory: the start's
    /// error when it refuses (the server then stays stopped).
    pub fn try_restart(&mut self) -> Result<(), StartError> {
        self.stop();
        let deadline = Instant::now() + RELEASE_TIMEOUT;
        let (addr, running) = loop {
            match launch(&self.settings) {
                Ok(started) => break started,
                // The previous instance's workers still hold the ledger's state store.
                Err(StartError::Ledger(e))
                    if e.to_string().contains("lock") && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        self.base = format!("http://{addr}");
        self.running = Some(running);
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the server on a thread of its own running an actix System, and returns its address
/// once it listens.
fn launch(settings: &Settings) -> Result<(SocketAddr, Running), StartError> {
    let (tx, rx) = mpsc::channel();
    let settings = settings.clone();
    let thread = std::thread::Builder::new()
        .name("test-server".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match timecredits_server::start(&settings) {
                    Ok((server, addr)) => {
                        let _ = tx.send(Ok((addr, server.handle())));
                        server.await.expect("the server serves until it is stopped");
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
        })
        .expect("a thread for the server");
    match rx.recv().expect("the server thread reports its start") {
        Ok((addr, handle)) => Ok((addr, Running { handle, thread })),
        Err(e) => {
            thread.join().expect("the server thread ends cleanly");
            Err(e)
        }
    }
}

/// The service as a child process (the `server-child` binary of this package), to be killed.
pub struct ChildServer {
    child: Child,
    base: String,
    admin_key: String,
}

impl ChildServer {
    /// Runs `exe DATA_DIR` and waits until it reports the address it listens on.
    pub fn spawn(exe: impl Into<PathBuf>, dir: &Path) -> ChildServer {
        let mut child = Command::new(exe.into())
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server child starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the server child reports its address");
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("unexpected output from the server child: {line:?}"));
        ChildServer {
            base: format!("http://{addr}"),
            admin_key: read_admin_key(dir),
            child,
        }
    }

    /// The server's base URL (`http://127.0.0.1:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The first administrator's API key.
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// Caps the size of every file the process writes (RLIMIT_FSIZE) at `bytes`: a write past it
    /// fails (`EFBIG`) as a write on a full disk does, and the process lives on.
    // The one unsafe call of this crate: std has no prlimit.
    #[allow(unsafe_code)]
    pub fn cap_file_size(&self, bytes: u64) {
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: prlimit reads `limit` and writes nothing (the old-limit pointer is null).
        let done = unsafe {
            libc::prlimit(
                self.child.id() as libc::pid_t,
                libc::RLIMIT_FSIZE,
                &limit,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(mut self) {
        self.kill_now();
    }

    /// Sends SIGTERM and returns the exit status once the process has stopped, or `None` if it
    /// is still running after `timeout` (it is then killed).
    pub fn terminate(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was sent");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill_now();
    }
}
