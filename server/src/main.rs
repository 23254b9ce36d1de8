//! The `tabiji` command.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tabiji_connectors::smtp::{Dkim, Smtp, SmtpSettings, dns_records};
use tabiji_connectors::{Recording, Registry};
use tabiji_engine::runtime::{Config as EngineConfig, spawn_worker};
use tabiji_model::Rights;
use tabiji_server::throttle::Throttle;
use tabiji_server::{AppState, demo, open_store, serve};
use tabiji_storage::auth::{self as users, NewUser, UserChange};
use tabiji_storage::db::DEFAULT_DATABASE_URL;
use tabiji_storage::sessions::{self, EndReason, Policy as SessionPolicy, SecondSignIn};
use tabiji_storage::{Db, Principal, migration};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "tabiji",
    version,
    about = "CRM and marketing automation for tourism organisations"
)]
struct Cli {
    /// sqlite://PATH (created if missing) or postgres://USER@HOST/DB
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (migrating the database first).
    Serve {
        #[arg(long, env = "TABIJI_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Mark the session cookie Secure (when served behind HTTPS).
        #[arg(long)]
        secure_cookies: bool,
        /// Serve the API only; `tabiji worker` processes run the flows.
        #[arg(long)]
        no_worker: bool,
        #[command(flatten)]
        web: WebArgs,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Run flows (entries, timers, events, deliveries) without serving the API. Start as many
    /// as you like, on one machine or several, against the same database: they share the work.
    Worker {
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load the deterministic demo data set (unless already loaded), then serve.
    Demo {
        /// Tourists to create (up to 10,000,000).
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
        contacts: u64,
        #[arg(long, default_value_t = 30_000)]
        businesses: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, env = "TABIJI_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Load the data and exit without serving.
        #[arg(long)]
        no_serve: bool,
        #[command(flatten)]
        web: WebArgs,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage roles.
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Work with scenario flows (JSON files, see docs/flows.md).
    Flow {
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Print the JSON Schema of filters (searches, segments, bulk actions).
    FilterSchema,
    /// Import partner files with import flows (JSON files, see docs/imports.md).
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Scheduled exports (DI-4): check, save and run jobs that deliver a file of records or of
    /// an aggregate to a folder or an SFTP server.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// DKIM keys for the e-mail channel, and the DNS records (DKIM, SPF, DMARC) to publish.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// The master key channel credentials (SMS, LINE, webhook) are sealed with.
    MasterKey {
        #[command(subcommand)]
        command: MasterKeyCommand,
    },
}

#[derive(Subcommand)]
enum MasterKeyCommand {
    /// Write a new 256-bit key, readable by its owner only; start tabiji with
    /// --master-key-file FILE. Keep it apart from database backups; an existing file is never
    /// replaced.
    Generate { file: std::path::PathBuf },
}

/// Writes `contents` to a new file only its owner can read; never replaces one.
fn write_private(path: &std::path::Path, contents: &str, what: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("the {what} cannot be written to {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn master_key(command: MasterKeyCommand) -> anyhow::Result<()> {
    match command {
        MasterKeyCommand::Generate { file } => {
            let key = tabiji_engine::channels::Vault::generate();
            write_private(&file, &format!("{key}\n"), "master key")?;
            let vault = tabiji_engine::channels::Vault::read(&file)?;
            println!(
                "Master key {} written to {} (mode 600). Start tabiji with --master-key-file {}.",
                vault.id(),
                file.display(),
                file.display()
            );
            Ok(())
        }
    }
}

#[derive(Subcommand)]
enum DkimCommand {
    /// Write a new 2048-bit RSA key (readable by its owner only) and print the DNS records.
    Keygen {
        /// Where to write the key (PKCS#1 PEM); an existing file is never replaced.
        #[arg(long)]
        out: std::path::PathBuf,
        #[command(flatten)]
        identity: DkimIdentity,
        #[command(flatten)]
        records: DnsArgs,
    },
    /// Print the DNS records for an existing key.
    Records {
        #[arg(long)]
        key: std::path::PathBuf,
        #[command(flatten)]
        identity: DkimIdentity,
        #[command(flatten)]
        records: DnsArgs,
    },
}

#[derive(clap::Args, Clone)]
struct DkimIdentity {
    /// The domain mail is sent from (the `d=` of the signature), such as kanko.example.jp.
    #[arg(long)]
    domain: String,
    /// The DNS selector (the `s=`), such as tabiji2026; change it when the key changes.
    #[arg(long)]
    selector: String,
}

#[derive(clap::Args, Clone)]
struct DnsArgs {
    /// Who may send for the domain in SPF: IP addresses or networks of your relays
    /// (203.0.113.5, 198.51.100.0/24) and providers' SPF domains (_spf.mailer.example).
    #[arg(long = "spf", value_delimiter = ',')]
    spf: Vec<String>,
    /// The address DMARC aggregate reports go to.
    #[arg(long)]
    dmarc_reports: Option<String>,
}

fn print_dns_records(dkim: &Dkim, records: &DnsArgs) {
    println!("Publish these TXT records:");
    for (name, value) in dns_records(dkim, &records.spf, records.dmarc_reports.as_deref()) {
        println!("{name}.\tTXT\t\"{value}\"");
    }
}

fn dkim(command: DkimCommand) -> anyhow::Result<()> {
    match command {
        DkimCommand::Keygen {
            out,
            identity,
            records,
        } => {
            let pem = Dkim::generate_pem()?;
            let dkim = Dkim::from_pem(
                &identity.domain,
                &identity.selector,
                &pem,
                &out.display().to_string(),
            )?;
            write_private(&out, &pem, "key")?;
            println!("DKIM key written to {} (mode 600).", out.display());
            print_dns_records(&dkim, &records);
            Ok(())
        }
        DkimCommand::Records {
            key,
            identity,
            records,
        } => {
            let dkim = Dkim::read(&identity.domain, &identity.selector, &key)?;
            print_dns_records(&dkim, &records);
            Ok(())
        }
    }
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Check export-job files against the database's schema; prints every problem with the
    /// part it concerns, exits 1 if any.
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Save an export job under a key, replacing the job saved under it.
    Save {
        key: String,
        file: std::path::PathBuf,
    },
    /// Make and deliver the job saved under `key` now, as tabiji itself; exits 1 if it failed.
    Run {
        key: String,
        #[command(flatten)]
        transfers: TransferArgs,
    },
    /// Print the JSON Schema of the export-job format.
    Schema,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Check import-flow files against the database's schema; prints every problem with the
    /// part it concerns, exits 1 if any.
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Save an import flow under a key, replacing the flow saved under it.
    Save {
        key: String,
        file: std::path::PathBuf,
    },
    /// Run the flow saved under `key` over files, in order, as tabiji itself; prints each run
    /// and exits 1 if a run failed or rejected rows.
    Run {
        key: String,
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Fetch a directory or SFTP flow's files now (as its schedule would), as tabiji itself.
    Fetch {
        key: String,
        #[command(flatten)]
        transfers: TransferArgs,
    },
    /// Print the JSON Schema of the import-flow format.
    Schema,
}

/// How the browser editor is served and how sessions behave.
#[derive(clap::Args, Clone)]
struct WebArgs {
    /// The built editor (`scripts/build-editor`), served at `/`.
    #[arg(long, env = "TABIJI_EDITOR_DIR", default_value = tabiji_server::editor::DEFAULT_DIR)]
    editor_dir: std::path::PathBuf,
    /// Minutes without activity after which a browser session ends.
    #[arg(long, env = "TABIJI_SESSION_IDLE_MINUTES", default_value_t = 480,
          value_parser = clap::value_parser!(u32).range(1..=43_200))]
    session_idle_minutes: u32,
    /// When an account signs in while it has a live session: `end-older` signs the other
    /// browser out (it is told why), `reject` refuses the new sign-in, `allow` keeps both.
    /// Every second sign-in is in the access log.
    #[arg(long, env = "TABIJI_SECOND_SIGN_IN", default_value = "end-older")]
    second_sign_in: SecondSignIn,
    /// tabiji is behind a reverse proxy: take the client's address (for sign-in limits and
    /// the session list) from the last `X-Forwarded-For` entry.
    #[arg(long, env = "TABIJI_BEHIND_PROXY")]
    behind_proxy: bool,
    /// Tracking requests (opens, clicks, unsubscribes) a minute from one address; beyond it
    /// readers still get their pixel and redirect but nothing is recorded until the minute ends.
    #[arg(long, env = "TABIJI_TRACKING_PER_MINUTE", default_value_t = tabiji_server::TRACKING_PER_MINUTE,
          value_parser = clap::value_parser!(u32).range(1..))]
    tracking_per_minute: u32,
    /// Calls to the events API a minute from one address; beyond it they are answered 429.
    #[arg(long, env = "TABIJI_EVENTS_PER_MINUTE", default_value_t = tabiji_server::EVENTS_PER_MINUTE,
          value_parser = clap::value_parser!(u32).range(1..))]
    events_per_minute: u32,
}

impl WebArgs {
    fn apply(self, state: &mut AppState) {
        state.editor_dir = Some(self.editor_dir);
        state.sessions = SessionPolicy {
            idle: chrono::Duration::minutes(i64::from(self.session_idle_minutes)),
            second_sign_in: self.second_sign_in,
        };
        state.behind_proxy = self.behind_proxy;
        state.tracking_throttle = Arc::new(Throttle::per_minute(self.tracking_per_minute));
        state.events_throttle = Arc::new(Throttle::per_minute(self.events_per_minute));
    }
}

/// How the engine runs and the channels send: the `test` channel always, e-mail when a relay
/// is given.
#[derive(clap::Args, Clone)]
struct EngineArgs {
    /// Append every message the `test` channel sends to this file, one JSON line each.
    #[arg(long, env = "TABIJI_TEST_CHANNEL_FILE")]
    test_channel_file: Option<std::path::PathBuf>,
    /// Make each `test` channel batch take this long, as a slow provider would.
    #[arg(long, default_value_t = 0)]
    test_channel_delay_ms: u64,
    /// Deliveries sent per round (at most this many are in flight at once).
    #[arg(long, default_value_t = 500)]
    delivery_batch: usize,
    /// How long claimed work stays with this process before another may take it; a send
    /// interrupted by a crash is reported `unknown` after this.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_secs: u64,
    #[command(flatten)]
    transfers: TransferArgs,
    #[command(flatten)]
    email: EmailArgs,
    /// Where people reach this installation, such as https://crm.kanko.example.jp: the open
    /// pixel, click and unsubscribe links in messages point there (needed for e-mail).
    #[arg(long, env = "TABIJI_PUBLIC_URL")]
    public_url: Option<String>,
    /// The key file (from `tabiji master-key generate`; chmod 600) that seals the credentials
    /// of the SMS, LINE and webhook channels. Without it those channels cannot be configured.
    #[arg(long, env = "TABIJI_MASTER_KEY_FILE")]
    master_key_file: Option<std::path::PathBuf>,
    /// Let the SMS, LINE and webhook channels send to this machine and private networks (a
    /// relay on the local network); by default they reach public addresses only.
    #[arg(long, env = "TABIJI_ALLOW_LOCAL_CHANNEL_URLS")]
    allow_local_channel_urls: bool,
}

/// The e-mail channel: the operator's SMTP relay and the DKIM key mail is signed with. The
/// relay's password is read from TABIJI_SMTP_PASSWORD only.
#[derive(clap::Args, Clone)]
struct EmailArgs {
    /// The relay: smtp://host:25 (plain, local relays only), smtp://user@host:587?tls=required
    /// (STARTTLS) or smtps://user@host:465 (TLS). Without it the e-mail channel is off.
    #[arg(long, env = "TABIJI_SMTP_URL")]
    smtp_url: Option<String>,
    /// The sender when a send node names none, such as "観光協会 <news@kanko.example.jp>".
    #[arg(long, env = "TABIJI_SMTP_FROM")]
    smtp_from: Option<String>,
    /// Connections kept open to the relay (messages in flight at once).
    #[arg(long, env = "TABIJI_SMTP_CONNECTIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    smtp_connections: u32,
    /// The DKIM private key (from `tabiji dkim keygen`; chmod 600). Mail is signed when given.
    #[arg(long, env = "TABIJI_DKIM_KEY", requires_all = ["dkim_domain", "dkim_selector"])]
    dkim_key: Option<std::path::PathBuf>,
    #[arg(long, env = "TABIJI_DKIM_DOMAIN")]
    dkim_domain: Option<String>,
    #[arg(long, env = "TABIJI_DKIM_SELECTOR")]
    dkim_selector: Option<String>,
}

impl EmailArgs {
    fn connector(&self) -> anyhow::Result<Option<Smtp>> {
        let Some(url) = &self.smtp_url else {
            return Ok(None);
        };
        let from = self
            .smtp_from
            .clone()
            .context("--smtp-from (TABIJI_SMTP_FROM) is needed with --smtp-url: the sender when a send node names none")?;
        let dkim = match &self.dkim_key {
            Some(key) => Some(Dkim::read(
                self.dkim_domain.as_deref().unwrap_or_default(),
                self.dkim_selector.as_deref().unwrap_or_default(),
                key,
            )?),
            None => None,
        };
        Ok(Some(Smtp::new(SmtpSettings {
            url: url.clone(),
            password: std::env::var("TABIJI_SMTP_PASSWORD").ok(),
            default_sender: from,
            dkim,
            connections: self.smtp_connections,
            timeout: std::time::Duration::from_secs(30),
        })?))
    }
}

/// Where import flows may fetch files from and scheduled exports may write them.
#[derive(clap::Args, Clone)]
struct TransferArgs {
    /// The folder partner files arrive under; directory import flows may only read below it
    /// (without it, directory sources are off).
    #[arg(long, env = "TABIJI_IMPORT_ROOT")]
    import_root: Option<std::path::PathBuf>,
    /// The folder scheduled exports may write files below (without it, directory
    /// destinations are off).
    #[arg(long, env = "TABIJI_EXPORT_ROOT")]
    export_root: Option<std::path::PathBuf>,
    /// The folder holding the private keys SFTP import flows and exports log in with (each
    /// names its key file; without it, SFTP key logins are off).
    #[arg(long, env = "TABIJI_SFTP_KEYS")]
    sftp_keys: Option<std::path::PathBuf>,
    /// The hosts HTTP import sources may download from, comma-separated (`partner.example`,
    /// `files.example:8443`); without them, HTTP sources are off.
    #[arg(long, env = "TABIJI_HTTP_HOSTS", value_delimiter = ',')]
    http_hosts: Vec<String>,
    /// The SFTP servers import flows and exports may log in to, comma-separated
    /// (`sftp.partner.example`, `files.example:2222`), each optionally bound to the key files or
    /// password variables that may be used there (`sftp.ota.example=ota_ed25519`); without
    /// them, SFTP is off.
    #[arg(long, env = "TABIJI_SFTP_HOSTS", value_delimiter = ',')]
    sftp_hosts: Vec<String>,
}

impl TransferArgs {
    fn settings(&self) -> tabiji_engine::transfer::Transfers {
        tabiji_engine::transfer::Transfers {
            import_root: self.import_root.clone(),
            export_root: self.export_root.clone(),
            sftp_keys: self.sftp_keys.clone(),
            http_hosts: self.http_hosts.clone(),
            sftp_hosts: self.sftp_hosts.clone(),
        }
    }
}

impl EngineArgs {
    fn registry(&self) -> anyhow::Result<Registry> {
        let recording = match &self.test_channel_file {
            Some(path) => Recording::to_file(path.clone())
                .with_context(|| format!("the test channel cannot write to {}", path.display()))?,
            None => Recording::counting(),
        }
        .with_delay(std::time::Duration::from_millis(self.test_channel_delay_ms));
        let mut registry = Registry::new().with(Arc::new(recording));
        if self.email.smtp_url.is_some() && self.public_url.is_none() {
            anyhow::bail!(
                "--public-url (TABIJI_PUBLIC_URL) is needed with --smtp-url: every mail carries a one-click unsubscribe link, which must point to this installation"
            );
        }
        if let Some(smtp) = self.email.connector()? {
            registry = registry.with(Arc::new(smtp));
        }
        Ok(registry)
    }

    fn state(&self, store: tabiji_storage::Store) -> anyhow::Result<AppState> {
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            anyhow::bail!("--public-url {url:?} must start with https:// (or http://)");
        }
        let config = EngineConfig {
            delivery_batch: self.delivery_batch.max(1),
            lease: std::time::Duration::from_secs(self.lease_secs),
            transfers: self.transfers.settings(),
            public_url: self.public_url.clone(),
            vault: match &self.master_key_file {
                Some(path) => Some(Arc::new(tabiji_engine::channels::Vault::read(path)?)),
                None => None,
            },
            channel_reach: if self.allow_local_channel_urls {
                tabiji_connectors::http::Reach::Anywhere
            } else {
                tabiji_connectors::http::Reach::Public
            },
            ..EngineConfig::default()
        };
        Ok(AppState::with_engine(store, self.registry()?, config))
    }
}

#[derive(Subcommand)]
enum FlowCommand {
    /// Check flow files; prints every problem with the node it concerns, exits 1 if any.
    Validate {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print the JSON Schema of the flow format (for editors and partner tooling).
    Schema,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from TABIJI_PASSWORD or, if unset, from standard input.
    Create {
        #[arg(long)]
        login: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Make the user an administrator (all rights, user management).
        #[arg(long)]
        admin: bool,
        /// A role to give the user; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List users and their roles.
    List,
    /// Set a user's password (from TABIJI_PASSWORD or standard input); their sessions end.
    Password {
        #[arg(long)]
        login: String,
    },
    /// Force a user off: every session of theirs ends at once.
    Logout {
        #[arg(long)]
        login: String,
    },
    /// Lift the lock that repeated wrong passwords put on a login.
    Unlock {
        #[arg(long)]
        login: String,
    },
    /// Disable a user (their sessions and tokens stop working) or enable them again.
    Disable {
        #[arg(long)]
        login: String,
        /// Enable the user instead.
        #[arg(long)]
        enable: bool,
    },
}

#[derive(Subcommand)]
enum RoleCommand {
    /// Create a role from a rights document, e.g.
    /// '{"entities":{"tourists":{"ops":["view"],"fields":{"phone":"none"}}}}'
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        rights: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it (it is shown once).
    Create {
        #[arg(long)]
        login: String,
        #[arg(long)]
        name: String,
        /// Days until it expires; without this it lasts until revoked.
        #[arg(long)]
        expires_days: Option<u32>,
        /// A rights document (JSON) the token is narrowed to, e.g.
        /// '{"entities":{"point_ledger":{"ops":["view","create"]}}}'.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Revoke an API token by its id; it stops working at once.
    Revoke {
        #[arg(long)]
        id: i64,
    },
}

/// mimalloc: the many small allocations of parsing and binding records run faster than with the
/// system allocator, measurably so in bulk inserts (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            secure_cookies,
            no_worker,
            web,
            engine,
        } => {
            let store = open_store(&cli.database_url).await?;
            let mut state = engine.state(store)?;
            state.secure_cookies = secure_cookies;
            web.apply(&mut state);
            let worker = (!no_worker).then(|| spawn_worker(state.runtime.clone()));
            let served = run_server(&listen, state).await;
            if let Some(worker) = worker {
                worker.stop().await;
            }
            served
        }
        Command::Worker { engine } => {
            let store = open_store(&cli.database_url).await?;
            let state = engine.state(store)?;
            let worker = spawn_worker(state.runtime.clone());
            eprintln!(
                "tabiji worker {} is running flows from {}",
                std::process::id(),
                redact(&cli.database_url)
            );
            shutdown_signal().await;
            worker.stop().await;
            eprintln!("tabiji worker stopped");
            Ok(())
        }
        Command::Migrate => {
            let db = Db::connect(&cli.database_url).await?;
            let applied = migration::run(&db).await?;
            println!("{applied} migration(s) applied; the database is up to date");
            Ok(())
        }
        Command::Demo {
            contacts,
            businesses,
            seed,
            listen,
            no_serve,
            web,
            engine,
        } => {
            let store = open_store(&cli.database_url).await?;
            let existing = store.count(&Principal::system(), "tourists").await?;
            if existing > 0 {
                eprintln!(
                    "demo data: the database already holds {existing} tourists; nothing loaded"
                );
            } else {
                let started = Instant::now();
                let mut last = Instant::now();
                let mut progress = |what: &str, done: usize, total: usize| {
                    if done == total || last.elapsed().as_millis() >= 500 {
                        eprint!("\r  {what:<18} {done:>9} / {total:<9}");
                        if done == total {
                            eprintln!();
                        }
                        let _ = std::io::stderr().flush();
                        last = Instant::now();
                    }
                };
                eprintln!(
                    "loading demo data (seed {seed}) into {}",
                    redact(&cli.database_url)
                );
                let summary = demo::load(
                    &store,
                    contacts as usize,
                    businesses as usize,
                    seed,
                    &mut progress,
                )
                .await?;
                let rows = summary.tourists
                    + summary.businesses
                    + summary.purchases
                    + summary.point_entries
                    + summary.inquiries * 2
                    + summary.interactions;
                eprintln!(
                    "loaded {} tourists, {} businesses, {} purchases, {} point entries, {} inquiries, {} interactions in {:.1} s ({:.0} rows/s)",
                    summary.tourists,
                    summary.businesses,
                    summary.purchases,
                    summary.point_entries,
                    summary.inquiries,
                    summary.interactions,
                    started.elapsed().as_secs_f64(),
                    demo::rate(rows, started)
                );
            }
            demo::ensure_users(&store).await?;
            demo::ensure_content(&store, chrono::Utc::now()).await?;
            eprintln!(
                "demo sign-in: {} / {} (administrator), {} / {} (front desk, no phone numbers)",
                demo::DEMO_ADMIN.0,
                demo::DEMO_ADMIN.1,
                demo::DEMO_CLERK.0,
                demo::DEMO_CLERK.1
            );
            if no_serve {
                return Ok(());
            }
            let mut state = engine.state(store)?;
            web.apply(&mut state);
            let worker = spawn_worker(state.runtime.clone());
            let served = run_server(&listen, state).await;
            worker.stop().await;
            served
        }
        Command::User { command } => {
            let db = Db::connect(&cli.database_url).await?;
            migration::run(&db).await?;
            match command {
                UserCommand::Create {
                    login,
                    display_name,
                    admin,
                    roles,
                } => {
                    let password = read_password()?;
                    let user = users::create_user(
                        &db,
                        NewUser {
                            login,
                            display_name,
                            password,
                            is_admin: admin,
                            roles,
                            rights: Rights::default(),
                        },
                    )
                    .await?;
                    println!("created user {} (id {})", user.login, user.id);
                }
                UserCommand::List => {
                    for (user, roles) in users::list_users(&db).await? {
                        let admin = if user.is_admin { " [admin]" } else { "" };
                        let disabled = if user.active { "" } else { " [disabled]" };
                        println!(
                            "{}\t{}{admin}{disabled}\t{}",
                            user.login,
                            user.display_name,
                            roles.join(", ")
                        );
                    }
                }
                UserCommand::Password { login } => {
                    let password = read_password()?;
                    let change = UserChange {
                        password: Some(password),
                        ..Default::default()
                    };
                    users::update_user(&db, &login, change, chrono::Utc::now()).await?;
                    println!("password of {login} set; their sessions ended");
                }
                UserCommand::Logout { login } => {
                    let user = users::find_user(&db, &login)
                        .await?
                        .with_context(|| format!("no user has login {login:?}"))?;
                    let ended = sessions::end_for_user(
                        &db,
                        user.id,
                        EndReason::EndedByAdministrator,
                        chrono::Utc::now(),
                    )
                    .await?;
                    println!("{ended} session(s) of {login} ended");
                }
                UserCommand::Unlock { login } => {
                    let was = sessions::unlock(&db, &login).await?;
                    println!(
                        "{login} {}",
                        if was { "unlocked" } else { "was not locked" }
                    );
                }
                UserCommand::Disable { login, enable } => {
                    let change = UserChange {
                        active: Some(enable),
                        ..Default::default()
                    };
                    users::update_user(&db, &login, change, chrono::Utc::now()).await?;
                    println!(
                        "{login} {}",
                        if enable {
                            "enabled"
                        } else {
                            "disabled; their sessions ended"
                        }
                    );
                }
            }
            Ok(())
        }
        Command::Role {
            command:
                RoleCommand::Create {
                    name,
                    description,
                    rights,
                },
        } => {
            let rights: Rights =
                serde_json::from_str(&rights).context("--rights is not a valid rights document")?;
            let db = Db::connect(&cli.database_url).await?;
            migration::run(&db).await?;
            let store = tabiji_storage::Store::open(db.clone()).await?;
            tabiji_storage::scope::check_record_filters(&store.schemas(), &rights)?;
            let role = users::create_role(&db, &name, &description, &rights).await?;
            println!("created role {} (id {})", role.name, role.id);
            Ok(())
        }
        Command::Import { command } => import(&cli.database_url, command).await,
        Command::Export { command } => export(&cli.database_url, command).await,
        Command::Dkim { command } => dkim(command),
        Command::MasterKey { command } => master_key(command),
        Command::FilterSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tabiji_model::filter::json_schema())?
            );
            Ok(())
        }
        Command::Flow {
            command: FlowCommand::Schema,
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tabiji_model::flow::json_schema())?
            );
            Ok(())
        }
        Command::Flow {
            command: FlowCommand::Validate { files },
        } => {
            let mut failed = false;
            for file in &files {
                let shown = file.display();
                let problems = match std::fs::read_to_string(file) {
                    Err(e) => vec![format!("cannot be read: {e}")],
                    Ok(text) => match serde_json::from_str::<tabiji_model::flow::Flow>(&text) {
                        Err(e) => vec![format!("is not a flow: {e}")],
                        Ok(flow) => flow.validate().iter().map(ToString::to_string).collect(),
                    },
                };
                if problems.is_empty() {
                    println!("{shown}: valid");
                } else {
                    failed = true;
                    for problem in problems {
                        println!("{shown}: {problem}");
                    }
                }
            }
            if failed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    login,
                    name,
                    expires_days,
                    scope,
                },
        } => {
            let scope: Option<Rights> = scope
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .context("--scope is not a valid rights document")?;
            let db = Db::connect(&cli.database_url).await?;
            migration::run(&db).await?;
            if let Some(scope) = &scope {
                let store = tabiji_storage::Store::open(db.clone()).await?;
                tabiji_storage::scope::check_record_filters(&store.schemas(), scope)?;
            }
            let Some(user) = users::find_user(&db, &login).await? else {
                bail!("no user has the login {login:?}; create one with `tabiji user create`");
            };
            let expires =
                expires_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
            let (_, secret) =
                users::create_token(&db, user.id, &name, expires, scope.as_ref()).await?;
            println!("{secret}");
            eprintln!("this token is shown once; send it as `Authorization: Bearer <token>`");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Revoke { id },
        } => {
            let db = Db::connect(&cli.database_url).await?;
            migration::run(&db).await?;
            let name = users::revoke_token(&db, id, None).await?;
            println!("revoked API token {id} ({name})");
            Ok(())
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("TABIJI_PASSWORD") {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password given: set TABIJI_PASSWORD or write it to standard input");
    }
    Ok(password)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

async fn run_server(listen: &str, state: AppState) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen}: is another program using it? choose another with --listen"
        )
    })?;
    let addr = listener.local_addr()?;
    eprintln!(
        "tabiji is serving on http://{addr} (API: http://{addr}/api/health, OpenAPI: http://{addr}/api/openapi.json)"
    );
    match &state.editor_dir {
        Some(dir) if tabiji_server::editor::is_built(dir) => {
            eprintln!("editor: http://{addr}/ (from {})", dir.display())
        }
        _ => eprintln!(
            "editor: not built; run scripts/build-editor (http://{addr}/ says what it needs)"
        ),
    }
    serve(listener, state, shutdown_signal()).await?;
    eprintln!("tabiji stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// A JSON file of the kind `what` names (an import flow, an export job).
fn read_json<T: serde::de::DeserializeOwned>(
    file: &std::path::Path,
    what: &str,
) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("{} cannot be read", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", file.display()))
}

async fn import(database_url: &str, command: ImportCommand) -> anyhow::Result<()> {
    use tabiji_model::clock::Clock as _;
    use tabiji_storage::imports;
    if let ImportCommand::Schema = command {
        println!(
            "{}",
            serde_json::to_string_pretty(&tabiji_model::import::json_schema())?
        );
        return Ok(());
    }
    let store = open_store(database_url).await?;
    let system = Principal::system();
    let clock = tabiji_model::clock::SystemClock;
    let mut failed = false;
    match command {
        ImportCommand::Schema => {}
        ImportCommand::Check { files } => {
            for file in &files {
                let shown = file.display();
                let problems = match read_json(file, "an import flow") {
                    Err(e) => vec![format!("{e:#}")],
                    Ok(flow) => problems(imports::check(&store, &flow).await, "flow")?,
                };
                failed |= print_problems(&shown.to_string(), &problems);
            }
        }
        ImportCommand::Save { key, file } => {
            let flow = read_json(&file, "an import flow")?;
            let saved = imports::save(&store, &system, &key, &flow, clock.now()).await?;
            println!(
                "saved import flow {} ({})",
                saved.key, saved.definition.name
            );
        }
        ImportCommand::Fetch { key, transfers } => {
            let saved = imports::get(&store, &system, &key).await?;
            let runs = tabiji_engine::import::fetch::fetch(
                &store,
                &system,
                &key,
                &saved.definition,
                &transfers.settings(),
                &clock,
            )
            .await?;
            if runs.is_empty() {
                println!("no file to import");
            }
            for run in runs {
                failed |= print_run(&store, &run).await?;
            }
        }
        ImportCommand::Run { key, files } => {
            let saved = imports::get(&store, &system, &key).await?;
            for file in &files {
                let bytes = std::fs::read(file)
                    .with_context(|| format!("{} cannot be read", file.display()))?;
                let name = file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into(),
                );
                let run = tabiji_engine::import::run_file(
                    &store,
                    &system,
                    &key,
                    &saved.definition,
                    &name,
                    &bytes,
                    &clock,
                )
                .await?;
                failed |= print_run(&store, &run).await?;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// The problems a check found, one line each (`field: message (code)`).
fn problems(
    checked: Result<(), tabiji_storage::StorageError>,
    whole: &str,
) -> anyhow::Result<Vec<String>> {
    match checked {
        Ok(()) => Ok(vec![]),
        Err(tabiji_storage::StorageError::Invalid(errors)) => Ok(errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {} ({})",
                    e.field.as_deref().unwrap_or(whole),
                    e.message,
                    e.code
                )
            })
            .collect()),
        Err(e) => Err(e.into()),
    }
}

/// Prints `file: valid` or each problem; `true` when there was one.
fn print_problems(shown: &str, problems: &[String]) -> bool {
    if problems.is_empty() {
        println!("{shown}: valid");
    }
    for problem in problems {
        println!("{shown}: {problem}");
    }
    !problems.is_empty()
}

async fn export(database_url: &str, command: ExportCommand) -> anyhow::Result<()> {
    use tabiji_model::clock::Clock as _;
    use tabiji_storage::export_jobs;
    if let ExportCommand::Schema = command {
        println!(
            "{}",
            serde_json::to_string_pretty(&tabiji_model::export::json_schema())?
        );
        return Ok(());
    }
    let store = open_store(database_url).await?;
    let system = Principal::system();
    let clock = tabiji_model::clock::SystemClock;
    let mut failed = false;
    match command {
        ExportCommand::Schema => {}
        ExportCommand::Check { files } => {
            for file in &files {
                let problems = match read_json(file, "an export job") {
                    Err(e) => vec![format!("{e:#}")],
                    Ok(job) => problems(export_jobs::check(&store, &job).await, "job")?,
                };
                failed |= print_problems(&file.display().to_string(), &problems);
            }
        }
        ExportCommand::Save { key, file } => {
            let job = read_json(&file, "an export job")?;
            let saved = export_jobs::save(&store, &system, &key, &job, clock.now()).await?;
            println!("saved export job {} ({})", saved.key, saved.definition.name);
        }
        ExportCommand::Run { key, transfers } => {
            let saved = export_jobs::get(&store, &system, &key).await?;
            let run = tabiji_engine::export::run_job(
                &store,
                &system,
                &key,
                &saved.definition,
                clock.now(),
                &transfers.settings(),
                &clock,
            )
            .await?;
            println!(
                "export {}: {} rows to {}/{} ({} bytes, sha256 {}){}",
                run.id,
                run.rows,
                run.destination,
                run.file_name,
                run.file_bytes,
                run.file_sha256,
                run.error
                    .as_deref()
                    .map(|e| format!("; failed: {e}"))
                    .unwrap_or_default(),
            );
            failed = run.error.is_some();
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Prints what a run did, with its first rejected rows; `true` when it failed or rejected rows.
async fn print_run(
    store: &tabiji_storage::Store,
    run: &tabiji_storage::imports::Run,
) -> anyhow::Result<bool> {
    println!(
        "import {}: {}: {} rows read, {} created, {} updated, {} unchanged, {} deleted, {} merged, {} rejected ({}){}",
        run.id,
        run.file_name,
        run.rows_read,
        run.created,
        run.updated,
        run.unchanged,
        run.deleted,
        run.merged,
        run.rejected,
        run.encoding.as_deref().unwrap_or("-"),
        run.error
            .as_deref()
            .map(|e| format!("; failed: {e}"))
            .unwrap_or_default(),
    );
    if run.error.is_none() && run.rejected == 0 {
        return Ok(false);
    }
    let rejected = tabiji_storage::imports::rejects(store, &Principal::system(), run.id).await?;
    for r in rejected.iter().take(20) {
        println!("  line {}: {}", r.line, r.reason);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn database_passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://tabiji:s3cret@db/tabiji"),
            "postgres://tabiji@db/tabiji"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact("sqlite://tabiji.db"), "sqlite://tabiji.db");
    }
}
