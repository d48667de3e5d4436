//! The service's configuration: every setting in one table, read from a TOML file, the
//! environment and the command line.
//!
//! Precedence, highest first: a command-line flag (`--workers 4`), an environment variable
//! (`TIMECREDITS_WORKERS=4`), the configuration file (`workers = 4` in the file named by
//! `--config` or `TIMECREDITS_CONFIG`), the embedded default. Each setting has the same name in
//! all three places: `snake_case` in the file, `--kebab-case` as a flag, `TIMECREDITS_` and
//! `UPPER_CASE` in the environment.
//!
//! The table below (`settings!`) is the one place a setting is declared: its flag, its
//! variable, its file key, its type, its default and its description all come from it, and so
//! do `timecredits config check`'s listing and the test that keeps `docs/configuration.md`
//! complete. A value is checked when it is read (its type's `FromStr` or `Deserialize`) and the
//! whole configuration once more before anything starts ([`Config::settings`]), and every
//! refusal names the setting.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cards::Config as CardConfig;
use crate::limits::Limits;
use crate::spend_codes::{Config as SpendCodeConfig, GuessLimits};
use crate::Settings;

/// One setting as documented: what `config check` lists and `docs/configuration.md` explains.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Its key in the configuration file (and, in kebab case, its flag).
    pub key: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// What it sets.
    pub doc: &'static str,
}

/// Declares every setting once: the flags ([`Flags`]), the file ([`FileValues`]), the effective
/// configuration ([`Config`]) with its merge, and the documented list ([`SETTINGS`]).
macro_rules! settings {
    ($( $(#[doc = $doc:literal])+ $key:ident : $ty:ty = $default:expr, $env:literal; )+) => {
        /// The settings given as flags or environment variables (clap reads both; a flag wins).
        #[derive(clap::Args, Debug, Default)]
        pub struct Flags {
            /// A TOML file of settings (see docs/configuration.md); flags and environment
            /// variables override it.
            #[arg(long, env = "TIMECREDITS_CONFIG")]
            pub config: Option<PathBuf>,
            $( $(#[doc = $doc])+ #[arg(long, env = $env)] pub $key: Option<$ty>, )+
        }

        /// The settings a configuration file gives; a key it does not know is refused.
        #[derive(Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields)]
        pub struct FileValues {
            $( $(#[doc = $doc])+ pub $key: Option<$ty>, )+
        }

        /// The effective configuration: every setting with the value that won.
        #[derive(Serialize, Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $key: $ty, )+
        }

        impl Config {
            fn merge(flags: Flags, file: FileValues) -> Config {
                Config { $( $key: flags.$key.or(file.$key).unwrap_or_else(|| $default), )+ }
            }
        }

        /// Every setting, in the order of the table.
        pub const SETTINGS: &[Setting] = &[
            $( Setting { key: stringify!($key), env: $env, doc: concat!($($doc),+) }, )+
        ];
    };
}

settings! {
    /// Where the ledger, the registry and the keys live.
    data_dir: PathBuf = PathBuf::from("data"), "TIMECREDITS_DATA_DIR";
    /// The address to listen on: `HOST:PORT`, `localhost:PORT`, or `:PORT` (every interface).
    listen: ListenAddr = ListenAddr(SocketAddr::from(([127, 0, 0, 1], 8080))), "TIMECREDITS_LISTEN";
    /// The checkpoint origin, fixed when the ledger is created: choose it before the first start
    /// (your domain and a path, e.g. `credits.example.org/timecredits`).
    origin: String = timecredits_ledger::LedgerConfig::default().origin, "TIMECREDITS_ORIGIN";
    /// HTTP worker threads (0: one per core).
    workers: usize = 0, "TIMECREDITS_WORKERS";
    /// The log's format: `text` (for people; colour on a terminal unless NO_COLOR is set) or
    /// `json` (one object a line, for a log collector).
    log_format: LogFormat = LogFormat::Text, "TIMECREDITS_LOG_FORMAT";
    /// Browser origins allowed to call the API from their pages (CORS), comma-separated, e.g.
    /// `https://desk.example.org`; empty (the default): none.
    cors_allowed_origins: CorsOrigins = CorsOrigins::default(), "TIMECREDITS_CORS_ALLOWED_ORIGINS";
    /// Days during which a partner may reverse its own entries.
    reversal_window_days: u32 = 30, "TIMECREDITS_REVERSAL_WINDOW_DAYS";
    /// Days after a key rotation during which the previous key also signs checkpoints.
    key_overlap_days: u32 = 30, "TIMECREDITS_KEY_OVERLAP_DAYS";
    /// Hours between scrubs of the journal (every record re-read and checked against the signed
    /// tree; damage stops writes). 0: never.
    scrub_interval_hours: u64 = 24, "TIMECREDITS_SCRUB_INTERVAL_HOURS";
    /// Hours during which a repeat of a member registration (same Idempotency-Key) shows the
    /// member's credential again; later repeats answer without it.
    credential_replay_hours: u32 = 24, "TIMECREDITS_CREDENTIAL_REPLAY_HOURS";
    /// Seconds a stop (SIGTERM, SIGINT) waits for the requests already received to be answered
    /// before it closes the connections.
    drain_timeout_secs: u64 = 30, "TIMECREDITS_DRAIN_TIMEOUT_SECS";
    /// MiB of memory for the ledger state's page cache (the largest memory bound).
    state_cache_mib: u64 = timecredits_ledger::LedgerConfig::default().cache_bytes >> 20, "TIMECREDITS_STATE_CACHE_MIB";
    /// Unused spend codes a member may hold at once (0: no limit).
    spend_codes_per_member: usize = SpendCodeConfig::default().max_live_per_member, "TIMECREDITS_SPEND_CODES_PER_MEMBER";
    /// Refused redemptions allowed per minute per API key (0: no limit).
    guesses_per_key: usize = GuessLimits::default().per_key, "TIMECREDITS_GUESSES_PER_KEY";
    /// Refused redemptions allowed per minute per partner, whichever key it uses (0: no limit).
    guesses_per_partner: usize = GuessLimits::default().per_partner, "TIMECREDITS_GUESSES_PER_PARTNER";
    /// Refused redemptions allowed per minute per source address (0: no limit).
    guesses_per_address: usize = GuessLimits::default().per_address, "TIMECREDITS_GUESSES_PER_ADDRESS";
    /// Refused redemptions allowed per minute for the whole service; past it every redemption
    /// gets 429 until the minute has passed (a breaker on the code space; 0: no limit).
    guesses_global: usize = GuessLimits::default().global, "TIMECREDITS_GUESSES_GLOBAL";
    /// The programme's name, printed on members' cards.
    programme_name: String = CardConfig::default().programme_name, "TIMECREDITS_PROGRAMME_NAME";
    /// Wrong PINs in a row after which a member card is locked, until the partner that
    /// registered the member resets its PIN or reissues it (1 to 10).
    card_pin_attempts: u32 = CardConfig::default().pin_attempts, "TIMECREDITS_CARD_PIN_ATTEMPTS";
    /// Sustained requests per second per credential (API key or member credential); 0: no limit.
    rate_per_key: u32 = Limits::default().per_key_per_second, "TIMECREDITS_RATE_PER_KEY";
    /// Requests a credential may make at once above its rate.
    burst_per_key: u32 = Limits::default().per_key_burst, "TIMECREDITS_BURST_PER_KEY";
    /// Sustained requests per second per source IP address; 0: no limit.
    rate_per_address: u32 = Limits::default().per_address_per_second, "TIMECREDITS_RATE_PER_ADDRESS";
    /// Requests an address may make at once above its rate.
    burst_per_address: u32 = Limits::default().per_address_burst, "TIMECREDITS_BURST_PER_ADDRESS";
    /// Seconds a client has to send a request body (then 408 `request_timeout`).
    body_timeout_secs: u64 = Limits::default().body_timeout.as_secs(), "TIMECREDITS_BODY_TIMEOUT_SECS";
    /// Seconds a client has to send a request head (then the connection is closed).
    head_timeout_secs: u64 = Limits::default().head_timeout.as_secs(), "TIMECREDITS_HEAD_TIMEOUT_SECS";
    /// Open connections served at once; more wait in the listen queue.
    max_connections: usize = Limits::default().max_connections, "TIMECREDITS_MAX_CONNECTIONS";
    /// The expiry policy: credits in a member wallet no entry touched for this many calendar
    /// months are expired, back to the programme, by an `expire` entry (1 to 120). Not set (the
    /// default): nothing ever expires.
    expiry_months: ExpiryMonths = ExpiryMonths(None), "TIMECREDITS_EXPIRY_MONTHS";
    /// Days ahead a coming expiry appears in the notice list (`GET /v1/expiries/upcoming`), 1 to
    /// 365; used only with `expiry_months`.
    expiry_notice_days: u32 = 30, "TIMECREDITS_EXPIRY_NOTICE_DAYS";
}

/// Why a configuration was refused. Each names the setting (or the file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML, has a key that is no setting, or a value of
    /// the wrong type.
    #[error("the configuration file {path} is refused: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and the line.
        message: String,
    },
    /// A setting's value is out of its range.
    #[error("setting `{key}` (--{flag}, {env}): {reason}")]
    Invalid {
        /// The setting's file key.
        key: &'static str,
        /// Its flag, without the dashes.
        flag: String,
        /// Its environment variable.
        env: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

impl Config {
    /// Reads the configuration file named by `flags.config` (if any) and merges it under the
    /// flags and environment variables, then checks the result.
    pub fn load(mut flags: Flags) -> Result<Config, ConfigError> {
        let file = match flags.config.take() {
            Some(path) => read_file(&path)?,
            None => FileValues::default(),
        };
        let config = Config::merge(flags, file);
        config.settings()?;
        Ok(config)
    }

    /// Every setting at its embedded default.
    pub fn defaults() -> Config {
        Config::merge(Flags::default(), FileValues::default())
    }

    /// The service's settings, checked: every refusal names its setting.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        if self.origin.is_empty()
            || self
                .origin
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "origin",
                "must be a non-empty name with no spaces (e.g. credits.example.org/timecredits)",
            ));
        }
        if self.reversal_window_days == 0 {
            return Err(invalid(
                "reversal_window_days",
                "must be at least 1 (a partner needs a window to correct its mistakes)",
            ));
        }
        if !(1..=1024).contains(&self.workers) && self.workers != 0 {
            return Err(invalid("workers", "must be from 0 (one per core) to 1024"));
        }
        if self.state_cache_mib == 0 || self.state_cache_mib > 1 << 20 {
            return Err(invalid(
                "state_cache_mib",
                "must be from 1 to 1048576 (1 TiB)",
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        if self.body_timeout_secs == 0 || self.head_timeout_secs == 0 {
            let key = if self.body_timeout_secs == 0 {
                "body_timeout_secs"
            } else {
                "head_timeout_secs"
            };
            return Err(invalid(key, "must be at least 1 second"));
        }
        if self.drain_timeout_secs > 3600 {
            return Err(invalid(
                "drain_timeout_secs",
                "must be at most 3600 (an hour)",
            ));
        }
        if !(1..=10).contains(&self.card_pin_attempts) {
            return Err(invalid("card_pin_attempts", "must be 1 to 10"));
        }
        let name = self.programme_name.trim();
        if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
            return Err(invalid(
                "programme_name",
                "must be 1 to 60 characters, none of them a control character",
            ));
        }
        if let Some(months) = self.expiry_months.0 {
            if !(1..=timecredits_domain::Details::MAX_EXPIRY_MONTHS).contains(&months) {
                return Err(invalid(
                    "expiry_months",
                    "must be from 1 to 120 months; leave it unset for no expiry",
                ));
            }
        }
        if !(1..=365).contains(&self.expiry_notice_days) {
            return Err(invalid("expiry_notice_days", "must be from 1 to 365 days"));
        }
        let mut settings = Settings::new(self.data_dir.clone(), self.listen.0);
        settings.expiry = self
            .expiry_months
            .0
            .map(|months| crate::service::expiries::Policy {
                months,
                notice_days: self.expiry_notice_days,
            });
        settings.cards = CardConfig {
            programme_name: name.to_owned(),
            pin_attempts: self.card_pin_attempts,
        };
        settings.origin = self.origin.clone();
        settings.workers = self.workers;
        settings.cors_allowed_origins = self.cors_allowed_origins.0.clone();
        settings.reversal_window = chrono::Duration::days(self.reversal_window_days.into());
        settings.key_overlap = chrono::Duration::days(self.key_overlap_days.into());
        settings.scrub_interval = (self.scrub_interval_hours > 0)
            .then(|| Duration::from_secs(self.scrub_interval_hours.saturating_mul(3600)));
        settings.credential_replay_window =
            chrono::Duration::hours(self.credential_replay_hours.into());
        settings.drain_timeout = Duration::from_secs(self.drain_timeout_secs);
        settings.state_cache_bytes = self.state_cache_mib << 20;
        settings.spend_codes.max_live_per_member = self.spend_codes_per_member;
        let guesses = &mut settings.spend_codes.guesses;
        guesses.per_key = self.guesses_per_key;
        guesses.per_partner = self.guesses_per_partner;
        guesses.per_address = self.guesses_per_address;
        guesses.global = self.guesses_global;
        settings.limits = Limits {
            per_key_per_second: self.rate_per_key,
            per_key_burst: self.burst_per_key,
            per_address_per_second: self.rate_per_address,
            per_address_burst: self.burst_per_address,
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            head_timeout: Duration::from_secs(self.head_timeout_secs),
            max_connections: self.max_connections,
        };
        Ok(settings)
    }

    /// The effective configuration as a TOML file that would give it, each setting under its
    /// description. No setting holds a secret (keys and secrets live in files in the data
    /// directory, never in the configuration), so nothing needs redacting.
    pub fn to_toml(&self) -> String {
        let values = toml::Value::try_from(self)
            .ok()
            .and_then(|v| v.as_table().cloned())
            .unwrap_or_default();
        let mut out = String::new();
        for setting in SETTINGS {
            let mut line = String::from("#");
            for word in setting.doc.split_whitespace() {
                if line.len() + 1 + word.len() > 100 {
                    out.push_str(&line);
                    out.push('\n');
                    line = String::from("#");
                }
                line.push(' ');
                line.push_str(word);
            }
            out.push_str(&line);
            out.push('\n');
            match values.get(setting.key) {
                Some(value) => out.push_str(&format!("{} = {value}\n\n", setting.key)),
                None => out.push_str(&format!("# {} is not set\n\n", setting.key)),
            }
        }
        out
    }
}

fn read_file(path: &Path) -> Result<FileValues, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

fn invalid(key: &'static str, reason: &str) -> ConfigError {
    let env = SETTINGS.iter().find(|s| s.key == key).map_or("", |s| s.env);
    ConfigError::Invalid {
        key,
        flag: key.replace('_', "-"),
        env,
        reason: reason.to_owned(),
    }
}

/// The address the service listens on. Besides `HOST:PORT` it takes `localhost:PORT` (the
/// loopback address) and `:PORT` (every interface), as operators write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<ListenAddr, String> {
        let refuse = || {
            format!(
                "`{text}` is not an address to listen on: write IP:PORT, localhost:PORT or \
                 :PORT (a host name other than localhost is not looked up)"
            )
        };
        if let Some(port) = text.strip_prefix(':') {
            let port = port.parse::<u16>().map_err(|_| refuse())?;
            return Ok(ListenAddr(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            )));
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(ListenAddr(addr));
        }
        match text.rsplit_once(':') {
            // Only the loopback name resolves without asking a resolver: a listen address that
            // depends on DNS at start would be a surprise.
            Some(("localhost", port)) => port
                .parse::<u16>()
                .map(|port| ListenAddr(SocketAddr::from((Ipv4Addr::LOCALHOST, port))))
                .map_err(|_| refuse()),
            _ => Err(refuse()),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The expiry policy's period in months, if there is one: unset means no expiry (a number
/// given is checked by [`Config::settings`], which refuses 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExpiryMonths(pub Option<u32>);

impl FromStr for ExpiryMonths {
    type Err = String;

    fn from_str(text: &str) -> Result<ExpiryMonths, String> {
        text.trim()
            .parse::<u32>()
            .map(|months| ExpiryMonths(Some(months)))
            .map_err(|_| format!("`{text}` is not a number of months"))
    }
}

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object a line.
    Json,
}

/// The browser origins allowed to call the API (CORS): each `scheme://host[:port]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CorsOrigins(pub Vec<String>);

impl CorsOrigins {
    fn checked(origins: Vec<String>) -> Result<CorsOrigins, String> {
        for origin in &origins {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let valid = rest.is_some_and(|host| {
                !host.is_empty()
                    && !host.contains('/')
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
            });
            if !valid {
                return Err(format!(
                    "`{origin}` is not an origin: write scheme://host[:port], e.g. \
                     https://desk.example.org (no path, no trailing slash, no `*`)"
                ));
            }
        }
        Ok(CorsOrigins(origins))
    }
}

impl FromStr for CorsOrigins {
    type Err = String;

    /// A comma-separated list, as an environment variable or a flag gives it.
    fn from_str(text: &str) -> Result<CorsOrigins, String> {
        CorsOrigins::checked(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for CorsOrigins {
    /// A TOML array of strings.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        CorsOrigins::checked(Vec::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<FileValues, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_flag_beats_the_file_and_the_file_beats_the_default() {
        let flags = Flags {
            workers: Some(3),
            ..Flags::default()
        };
        let config = Config::merge(
            flags,
            file("workers = 2\nreversal_window_days = 7\n").unwrap(),
        );
        assert_eq!(config.workers, 3);
        assert_eq!(config.reversal_window_days, 7);
        assert_eq!(config.key_overlap_days, 30);
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let error = file("wrokers = 2\n").unwrap_err();
        assert!(error.contains("wrokers"), "{error}");
    }

    #[test]
    fn a_value_out_of_range_names_its_setting() {
        let mut config = Config::defaults();
        config.reversal_window_days = 0;
        let error = config.settings().unwrap_err().to_string();
        assert!(error.contains("reversal_window_days"), "{error}");
        assert!(error.contains("--reversal-window-days"), "{error}");
        assert!(
            error.contains("TIMECREDITS_REVERSAL_WINDOW_DAYS"),
            "{error}"
        );
    }

    #[test]
    fn every_setting_has_its_variable_and_a_description() {
        for setting in SETTINGS {
            assert_eq!(
                setting.env,
                format!("TIMECREDITS_{}", setting.key.to_uppercase()),
                "{}",
                setting.key
            );
            assert!(!setting.doc.trim().is_empty(), "{}", setting.key);
        }
    }

    #[test]
    fn the_printed_configuration_reads_back_as_the_same() {
        let mut config = Config::defaults();
        config.workers = 5;
        config.cors_allowed_origins = "https://a.example, http://b.example:8080".parse().unwrap();
        config.log_format = LogFormat::Json;
        let again = Config::merge(Flags::default(), file(&config.to_toml()).unwrap());
        assert_eq!(again.to_toml(), config.to_toml());
        assert_eq!(again.workers, 5);
    }

    /// docs/configuration.md shows the defaults as `config check` prints them, so the
    /// reference cannot fall behind the table.
    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let doc = include_str!("../../../docs/configuration.md");
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/configuration.md has a ```toml block");
        assert_eq!(
            block,
            Config::defaults().to_toml(),
            "regenerate the block with `timecredits config check`"
        );
    }

    #[test]
    fn an_expiry_policy_is_off_unless_set_and_refused_out_of_range() {
        let defaults = Config::defaults();
        assert_eq!(defaults.settings().unwrap().expiry, None);
        assert!(defaults.to_toml().contains("# expiry_months is not set"));
        let set = Config::merge(
            Flags::default(),
            file("expiry_months = 12\nexpiry_notice_days = 14\n").unwrap(),
        );
        let policy = set.settings().unwrap().expiry.unwrap();
        assert_eq!((policy.months, policy.notice_days), (12, 14));
        let again = Config::merge(Flags::default(), file(&set.to_toml()).unwrap());
        assert_eq!(again.expiry_months, ExpiryMonths(Some(12)));
        for (key, text) in [
            ("expiry_months", "expiry_months = 0\n"),
            ("expiry_months", "expiry_months = 121\n"),
            ("expiry_notice_days", "expiry_notice_days = 0\n"),
            ("expiry_notice_days", "expiry_notice_days = 366\n"),
        ] {
            let config = Config::merge(Flags::default(), file(text).unwrap());
            let error = config.settings().unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
        assert!("twelve".parse::<ExpiryMonths>().is_err());
    }

    #[test]
    fn listen_takes_what_operators_write() {
        let parse = |s: &str| s.parse::<ListenAddr>().map(|a| a.0.to_string());
        assert_eq!(parse(":8080").unwrap(), "0.0.0.0:8080");
        assert_eq!(parse("localhost:9000").unwrap(), "127.0.0.1:9000");
        assert_eq!(parse("[::1]:80").unwrap(), "[::1]:80");
        assert_eq!(parse("10.0.0.1:443").unwrap(), "10.0.0.1:443");
        for bad in ["8080", ":", ":99999", "localhost", "localhost:x", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        assert!("https://desk.example.org,http://localhost:3000"
            .parse::<CorsOrigins>()
            .is_ok());
        for bad in [
            "*",
            "desk.example.org",
            "https://a.example/",
            "https://",
            "ftp://x",
        ] {
            assert!(bad.parse::<CorsOrigins>().is_err(), "{bad}");
        }
        assert_eq!("".parse::<CorsOrigins>().unwrap(), CorsOrigins::default());
    }
}
