//! The command line: one clap subcommand per verb. Every flag can also come
//! from a `RAFT_KV_*` environment variable (the flag's name in capitals,
//! `-` as `_`: `--api-addr` is `RAFT_KV_API_ADDR`) and from a TOML file given
//! with `--config` (the flag's name as the key: `api-addr = "..."`). A flag
//! on the command line wins over the environment, which wins over the file.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A replicated key-value store on Raft.
#[derive(Debug, Parser)]
#[command(name = "raft-kv", version = concat!(env!("CARGO_PKG_VERSION"), " (Timber)"), about)]
pub struct Cli {
    /// A TOML file of flags (`flag-name = value`), below the command line
    /// and the environment.
    #[arg(long, global = true, env = "RAFT_KV_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one node.
    Node(NodeArgs),
    /// Runs a local cluster of separate node processes.
    Cluster(ClusterArgs),
    /// Makes a cluster CA and node certificates (for QUIC).
    Certs(CertsArgs),
    /// Sets a key (the value from the argument, or stdin with `-`).
    Put {
        /// The key.
        key: String,
        /// The value (`-`: read stdin).
        value: String,
        /// Only if the key's revision is this (0: only if absent).
        #[arg(long)]
        if_revision: Option<u64>,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Reads a key.
    Get {
        /// The key.
        key: String,
        /// How to read.
        #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
        consistency: Consistency,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Removes a key.
    Delete {
        /// The key.
        key: String,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Compare-and-set: replaces the value if it is EXPECTED.
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold (`--absent`: it must not exist).
        #[arg(long, conflicts_with = "absent")]
        expected: Option<String>,
        /// The key must be absent.
        #[arg(long)]
        absent: bool,
        /// The new value (`--delete`: remove the key).
        #[arg(long = "new", conflicts_with = "delete")]
        new_value: Option<String>,
        /// Remove the key if the comparison holds.
        #[arg(long)]
        delete: bool,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Lists keys under a prefix.
    List {
        /// The prefix (empty: every key).
        #[arg(default_value = "")]
        prefix: String,
        /// The most keys to show (all pages are fetched up to it).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Runs a transaction from a JSON file (`-`: stdin).
    Txn {
        /// The file.
        #[arg(default_value = "-")]
        file: PathBuf,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Shows the cluster's members.
    Status {
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Adds a learner.
    AddLearner {
        /// Its id.
        id: u64,
        /// Its Raft address.
        raft_addr: String,
        /// Its API address.
        api_addr: String,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Promotes a caught-up learner to voter.
    Promote {
        /// Its id.
        id: u64,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Sets the voters and learners.
    ChangeMembership {
        /// The voters, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        voters: Vec<u64>,
        /// The learners, comma-separated.
        #[arg(long, value_delimiter = ',')]
        learners: Vec<u64>,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Removes a member.
    RemoveNode {
        /// Its id.
        id: u64,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Hands leadership to a voter.
    TransferLeader {
        /// Its id.
        to: u64,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Makes the node reached build a snapshot now.
    Snapshot {
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Loads a backup from FILE into a new, empty cluster.
    Restore {
        /// The backup.
        file: PathBuf,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Saves a consistent backup to FILE.
    Backup {
        /// Where to write it.
        file: PathBuf,
        /// The client flags.
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Confirmed with the leader (ReadIndex).
    Linearizable,
    /// Under the leader's lease.
    Lease,
    /// What the node reached has applied.
    Stale,
}

impl Consistency {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Lease => "lease",
            Consistency::Stale => "stale",
        }
    }
}

/// The flags every client verb takes.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The nodes' API addresses, tried in turn.
    #[arg(long, env = "RAFT_KV_ENDPOINTS", value_delimiter = ',', default_value = "127.0.0.1:8001")]
    pub endpoints: Vec<String>,
    /// Output JSON (the API's own types) instead of text.
    #[arg(long, env = "RAFT_KV_JSON")]
    pub json: bool,
    /// How long to keep trying, in seconds.
    #[arg(long, env = "RAFT_KV_TIMEOUT", default_value_t = 10)]
    pub timeout: u64,
    /// Reach the endpoints over HTTPS, trusting this CA (`ca.pem` from
    /// `raft-kv certs`).
    #[arg(long, env = "RAFT_KV_CACERT")]
    pub cacert: Option<PathBuf>,
    /// A client certificate to present (`client.pem` from `raft-kv
    /// certs`), for nodes started with `--api-client-ca`.
    #[arg(long, env = "RAFT_KV_CERT", requires = "client_key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's key (`client-key.pem`).
    #[arg(long = "key", id = "client_key", env = "RAFT_KV_KEY", requires = "cert")]
    pub client_key: Option<PathBuf>,
}

impl ClientArgs {
    /// The HTTPS settings these flags ask for.
    pub fn tls(&self) -> crate::tls::ClientTls {
        crate::tls::ClientTls {
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.client_key.clone(),
        }
    }
}

/// Where the log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// RocksDB, durable.
    Rocksdb,
    /// Memory: everything is lost when the process stops.
    Mem,
}

/// How nodes talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// TCP (mutual TLS with `--tls-dir`).
    Tcp,
    /// QUIC, always mutual TLS (needs `--tls-dir`).
    Quic,
}

/// `raft-kv node`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// This node's id (from 1).
    #[arg(long, env = "RAFT_KV_ID")]
    pub id: u64,
    /// Where peers reach this node's Raft transport.
    #[arg(long, env = "RAFT_KV_RAFT_ADDR")]
    pub raft_addr: SocketAddr,
    /// Where clients reach this node's HTTP API.
    #[arg(long, env = "RAFT_KV_API_ADDR")]
    pub api_addr: SocketAddr,
    /// Where the node keeps its data.
    #[arg(long, env = "RAFT_KV_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The log store.
    #[arg(long, env = "RAFT_KV_STORAGE", value_enum, default_value_t = Storage::Rocksdb)]
    pub storage: Storage,
    /// The transport between nodes.
    #[arg(long, env = "RAFT_KV_TRANSPORT", value_enum, default_value_t = TransportKind::Tcp)]
    pub transport: TransportKind,
    /// A directory with `ca.pem`, `node-<id>.pem` and `node-<id>-key.pem`
    /// (from `raft-kv certs`): mutual TLS between nodes.
    #[arg(long, env = "RAFT_KV_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Found a new cluster with this node as its only voter.
    #[arg(long, env = "RAFT_KV_INIT", conflicts_with_all = ["join", "initial_members"])]
    pub init: bool,
    /// Join a running cluster through any member's API address.
    #[arg(long, env = "RAFT_KV_JOIN", conflicts_with = "initial_members")]
    pub join: Option<String>,
    /// With `--init`: load this backup (from `raft-kv backup` or `GET
    /// /backup`) into the new cluster before serving it.
    #[arg(long, env = "RAFT_KV_RESTORE", requires = "init")]
    pub restore: Option<PathBuf>,
    /// Found a cluster of several voters: `1=RAFT@API,2=RAFT@API,...`.
    #[arg(long, env = "RAFT_KV_INITIAL_MEMBERS")]
    pub initial_members: Option<String>,
    /// Allow the API to listen in the clear on a non-loopback address.
    #[arg(long, env = "RAFT_KV_ALLOW_PUBLIC_API")]
    pub allow_public_api: bool,
    /// Serve the API over HTTPS, from a directory with `ca.pem`,
    /// `api-<id>.pem` and `api-<id>-key.pem` (from `raft-kv certs`). The
    /// node then calls other nodes' APIs over HTTPS too.
    #[arg(long, env = "RAFT_KV_API_TLS_DIR")]
    pub api_tls_dir: Option<PathBuf>,
    /// Require API clients to present a certificate signed by this CA
    /// (`ca.pem`): only holders of a cluster-signed certificate can read or
    /// write. Needs `--api-tls-dir`.
    #[arg(long, env = "RAFT_KV_API_CLIENT_CA", requires = "api_tls_dir")]
    pub api_client_ca: Option<PathBuf>,
    /// The longest key, in bytes.
    #[arg(long, env = "RAFT_KV_MAX_KEY_BYTES", default_value_t = 1024)]
    pub max_key_bytes: usize,
    /// The largest value, in bytes.
    #[arg(long, env = "RAFT_KV_MAX_VALUE_BYTES", default_value_t = 1 << 20)]
    pub max_value_bytes: usize,
    /// The largest request body, in bytes.
    #[arg(long, env = "RAFT_KV_MAX_BODY_BYTES", default_value_t = 2 << 20)]
    pub max_body_bytes: usize,
    /// Requests served at once.
    #[arg(long, env = "RAFT_KV_MAX_CONCURRENT", default_value_t = 1024)]
    pub max_concurrent: usize,
    /// One Raft tick, in milliseconds (elections after 10 to 20 ticks).
    #[arg(long, env = "RAFT_KV_TICK_MS", default_value_t = 10)]
    pub tick_ms: u64,
    /// Snapshot after this many entries applied.
    #[arg(long, env = "RAFT_KV_SNAPSHOT_THRESHOLD", default_value_t = 8192)]
    pub snapshot_threshold: u64,
    /// Stop when standard input closes (the cluster supervisor's children:
    /// they go when it goes, however it goes).
    #[arg(long, hide = true)]
    pub exit_on_stdin_close: bool,
    /// For fault tests (`raft-chaos`): dial these peers at these addresses
    /// instead of the configuration's, `ID=HOST:PORT,...`, so that a proxy
    /// on each directed link can cut, delay or drop it.
    #[arg(long, hide = true)]
    pub peer_via: Option<String>,
    /// For fault tests only: serve linearizable reads from local state,
    /// without ReadIndex (unsafe: a deliberate bug that `raft-chaos` must
    /// catch). Refused unless `RAFT_KV_UNSAFE_TESTING=1` is set too.
    #[arg(long, hide = true)]
    pub unsafe_local_reads_for_testing: bool,
}

/// `raft-kv cluster`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// How many nodes.
    #[arg(long, env = "RAFT_KV_NODES", default_value_t = 3)]
    pub nodes: u64,
    /// The transport between nodes.
    #[arg(long, env = "RAFT_KV_TRANSPORT", value_enum, default_value_t = TransportKind::Tcp)]
    pub transport: TransportKind,
    /// The log store.
    #[arg(long, env = "RAFT_KV_STORAGE", value_enum, default_value_t = Storage::Rocksdb)]
    pub storage: Storage,
    /// Where the nodes keep their data and logs; run again on the same
    /// directory to resume the cluster.
    #[arg(long, env = "RAFT_KV_DIR", default_value = "raft-kv-cluster")]
    pub dir: PathBuf,
    /// The first port: node N's API listens on BASE+N and its Raft
    /// transport on BASE+100+N (0: free ports, picked on first start and
    /// kept in the directory).
    #[arg(long, env = "RAFT_KV_BASE_PORT", default_value_t = 0)]
    pub base_port: u16,
    /// Serve every node's API over HTTPS and require client certificates:
    /// makes a CA, the nodes' API certificates and a client certificate in
    /// `DIR/tls` (the Raft links use mutual TLS from the same CA).
    #[arg(long, env = "RAFT_KV_SECURE")]
    pub secure: bool,
}

/// `raft-kv certs`.
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Where to write them.
    #[arg(long, env = "RAFT_KV_CERTS_DIR")]
    pub dir: PathBuf,
    /// The node ids, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<u64>,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365)]
    pub days: u64,
    /// Host names or addresses the API certificates name, beside
    /// `localhost`, `127.0.0.1` and `::1`.
    #[arg(long, value_delimiter = ',')]
    pub api_hosts: Vec<String>,
}

/// Reads `--config FILE` (or `RAFT_KV_CONFIG`) from `args` before clap
/// parses them, and sets `RAFT_KV_*` for each key of the file the
/// environment does not set yet, so that the file ranks below both.
pub fn apply_config_file(args: &[String]) -> Result<(), String> {
    let mut path = std::env::var_os("RAFT_KV_CONFIG").map(PathBuf::from);
    for (i, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix("--config=") {
            path = Some(value.into());
        } else if arg == "--config" {
            path = args.get(i + 1).map(PathBuf::from);
        }
    }
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
    for (key, value) in table {
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    _ => Err(format!("{}: {key}: list items must be strings or numbers", path.display())),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(format!("{}: {key} is not a string, number, boolean or list", path.display())),
        };
        let name = format!("RAFT_KV_{}", key.to_uppercase().replace('-', "_"));
        if std::env::var_os(&name).is_none() {
            std::env::set_var(name, value);
        }
    }
    Ok(())
}
