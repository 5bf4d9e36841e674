//! `crmcube serve`: the read-only Arrow Flight SQL endpoint (see crates/serve).

use super::cube::ModelArgs;
use super::{runtime, Context};
use anyhow::{Context as _, Result};
use crmcube_serve::{serve, ServeOptions, Users, PASSWORD_ENV, USER_ENV};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `serve`.
#[derive(clap::Args)]
#[command(after_help = format!(
    "Users come from --auth-file and/or the environment ({PASSWORD_ENV}, with {USER_ENV}, default `crmcube`), never from flags.\n\
     Connect with any Flight SQL client, e.g. Python ADBC:\n  \
     adbc_driver_flightsql.dbapi.connect(\"grpc://127.0.0.1:50051\", db_kwargs={{\"username\": \"crmcube\", \"password\": \"…\"}})\n\
     or any PostgreSQL client: psql \"host=127.0.0.1 port=5433 user=crmcube dbname=crmcube\""
))]
pub struct ServeArgs {
    /// The warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Arrow Flight SQL port (0: any free port; the one taken is printed).
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// PostgreSQL wire protocol port (0: any free port).
    #[arg(long, default_value_t = 5433)]
    pub pg_port: u16,
    /// Serve Flight SQL only, no PostgreSQL endpoint.
    #[arg(long)]
    pub no_pg: bool,
    /// PostgreSQL connections open at once (more are refused).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// YAML file of users and password SHA-256 hashes (see docs/integrations.md).
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Accept clients without a password (only on a loopback address).
    #[arg(long, conflicts_with = "auth_file")]
    pub no_auth: bool,
    /// TLS certificate chain (PEM); with --tls-key, clients connect with grpc+tls://.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Queries that run at once; more wait for a slot (within the query timeout).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_queries: u32,
    /// Seconds a query may wait and run before it is stopped.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub query_timeout: u64,
    /// Memory for query execution, e.g. 512M or 4G (aggregations, joins and sorts that
    /// need more fail with a clear error).
    #[arg(long, value_parser = parse_bytes)]
    pub memory_limit: Option<u64>,
}

fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (
            &t[..i],
            match t[i..].to_ascii_uppercase().as_str() {
                "K" | "KB" => 1u64 << 10,
                "M" | "MB" => 1 << 20,
                "G" | "GB" => 1 << 30,
                other => return Err(format!("unknown unit `{other}`: use K, M or G")),
            },
        ),
        None => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 512M or 4G"))?;
    if !n.is_finite() || n <= 0.0 {
        return Err(format!("`{s}`: the size must be positive"));
    }
    Ok((n * mult as f64) as u64)
}

/// Runs `serve` until SIGINT or SIGTERM.
pub fn run(ctx: &Context, a: ServeArgs) -> Result<()> {
    let model = a.model.load()?;
    let users = if a.no_auth {
        None
    } else {
        Some(Users::load(a.auth_file.as_deref())?)
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).with_context(|| format!("{}", c.display()))?,
            std::fs::read(k).with_context(|| format!("{}", k.display()))?,
        )),
        _ => None,
    };
    let scheme = if tls.is_some() { "grpc+tls" } else { "grpc" };
    let opts = ServeOptions {
        warehouse: a.warehouse.clone(),
        model,
        addr: std::net::SocketAddr::new(a.host, a.port),
        users,
        tls,
        max_concurrent: a.max_concurrent_queries as usize,
        query_timeout: Duration::from_secs(a.query_timeout),
        memory_limit: a.memory_limit,
        pg_addr: (!a.no_pg).then(|| std::net::SocketAddr::new(a.host, a.pg_port)),
        max_connections: a.max_connections as usize,
    };
    let rt = runtime()?;
    let quiet = ctx.quiet;
    rt.block_on(serve(opts, |s| {
        // Always printed (even with --quiet): scripts read the port from it.
        eprintln!(
            "crmcube serve: Flight SQL on {scheme}://{} (warehouse {}, version {}, {} tables and views)",
            s.addr,
            a.warehouse.display(),
            s.version.map_or("-".into(), |v| v.to_string()),
            s.tables
        );
        if let Some(pg) = s.pg_addr {
            eprintln!(
                "crmcube serve: PostgreSQL on {pg}{} (e.g. psql \"host={} port={} user=… dbname=crmcube\")",
                if scheme == "grpc+tls" { " with TLS" } else { "" },
                pg.ip(),
                pg.port()
            );
        }
        if !quiet {
            eprintln!("stop with Ctrl-C (or SIGTERM)");
        }
    }))?;
    ctx.note("crmcube serve: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("4G"), Ok(4 << 30));
        assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("4T").is_err());
        assert!(parse_bytes("lots").is_err());
    }
}
