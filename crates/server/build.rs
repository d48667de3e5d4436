//! Records the git commit the binary is built from (`TIMECREDITS_COMMIT`, for `timecredits
//! --version`): `git rev-parse` when the source is a git checkout and git is installed,
//! otherwise "unknown". Nothing else is asked of the build environment.

use std::process::Command;

/// `git ARGS` in the package's directory, trimmed, if it ran and printed something.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TIMECREDITS_COMMIT={commit}");
    // Build again when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit).
    // Only files that exist are named; a missing one would make every build run this again.
    let mut watched = vec!["HEAD".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
