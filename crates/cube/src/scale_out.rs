//! Where a warehouse's SQL runs: in this process (the default) or on an Apache Ballista
//! cluster (cargo feature `ballista`).
//!
//! The tables are registered exactly as for a local query (one listing table per table,
//! naming the Parquet files of the warehouse version being read); with Ballista the plan
//! is shipped to the scheduler and the executors read those files themselves. So every
//! executor must see the warehouse at the same path as the client (a shared mount), see
//! docs/scale-out.md.

use crate::warehouse::Warehouse;
use crmcube_model::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The port a Ballista scheduler listens on unless told otherwise.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// Where queries run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    Local,
    /// A Ballista scheduler, `host` and `port`.
    Ballista {
        /// Scheduler host name or address.
        host: String,
        /// Scheduler gRPC port.
        port: u16,
    },
}

impl FromStr for Engine {
    type Err = Error;

    /// `local`, or `ballista://HOST[:PORT]` (also `df://HOST[:PORT]`, Ballista's own
    /// spelling); the port defaults to 50050.
    fn from_str(s: &str) -> Result<Engine> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("local") {
            return Ok(Engine::Local);
        }
        let bad = |why: &str| {
            Error::Usage(format!(
                "--engine `{s}`: {why}; expected `local` or `ballista://HOST:PORT`"
            ))
        };
        let rest = s
            .strip_prefix("ballista://")
            .or_else(|| s.strip_prefix("df://"))
            .ok_or_else(|| bad("unknown engine"))?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad("expected a host and an optional port, nothing more"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 address without a port: [::1]
            Some((h, p)) if !p.ends_with(']') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| bad(&format!("`{p}` is not a port number")))?;
                (h.to_string(), port)
            }
            _ => (rest.to_string(), DEFAULT_SCHEDULER_PORT),
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        Ok(Engine::Ballista { host, port })
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Local => write!(f, "local"),
            Engine::Ballista { host, port } => write!(f, "ballista://{host}:{port}"),
        }
    }
}

/// Whether this build can run queries on Ballista.
pub const BALLISTA_BUILT_IN: bool = cfg!(feature = "ballista");

impl Warehouse {
    /// The same tables, with queries run by `engine`.
    pub fn with_engine(self, engine: &Engine) -> Result<Warehouse> {
        match engine {
            Engine::Local => Ok(self),
            Engine::Ballista { host, port } => ballista::connect(self, host, *port),
        }
    }
}

#[cfg(feature = "ballista")]
mod ballista {
    use super::*;
    use ballista_core::extension::SessionStateExt;
    use datafusion::prelude::SessionContext;

    pub(super) fn connect(wh: Warehouse, host: &str, port: u16) -> Result<Warehouse> {
        let url = format!("http://{host}:{port}");
        let local = wh.context();
        // Building the upgraded session puts a fresh, empty default catalog into the
        // catalog list it shares with this one: keep the catalog holding the warehouse
        // tables first, and put it back after.
        let name = local
            .state()
            .config()
            .options()
            .catalog
            .default_catalog
            .clone();
        let tables = local.catalog(&name);
        let state = local
            .state()
            .upgrade_for_ballista(url)
            .map_err(|e| Error::Usage(format!("Ballista scheduler {host}:{port}: {e}")))?;
        let ctx = SessionContext::new_with_state(state);
        if let Some(catalog) = tables {
            ctx.register_catalog(&name, catalog);
        }
        Ok(wh.replace_context(ctx))
    }

    /// A Ballista scheduler and one executor in this process, on loopback: the
    /// scale-out path on one machine (for trying it, and for the tests). Returns the
    /// scheduler's port; both run until the process ends.
    pub async fn local_cluster(threads: usize) -> Result<u16> {
        use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
        use ballista_core::serde::BallistaCodec;
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            Error::Usage(format!("local Ballista cluster: {what}: {e}"))
        };
        let addr = ballista_scheduler::standalone::new_standalone_scheduler()
            .await
            .map_err(|e| fail("scheduler", &e))?;
        let url = format!("http://localhost:{}", addr.port());
        let mut tries = 0;
        let scheduler = loop {
            match SchedulerGrpcClient::connect(url.clone()).await {
                Ok(s) => break s,
                Err(e) if tries >= 100 => return Err(fail("connecting to the scheduler", &e)),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        ballista_executor::new_standalone_executor(
            scheduler,
            threads.max(1),
            BallistaCodec::default(),
        )
        .await
        .map_err(|e| fail("executor", &e))?;
        Ok(addr.port())
    }
}

#[cfg(feature = "ballista")]
pub use ballista::local_cluster;

#[cfg(not(feature = "ballista"))]
mod ballista {
    use super::*;

    pub(super) fn connect(_: Warehouse, host: &str, port: u16) -> Result<Warehouse> {
        Err(Error::Usage(format!(
            "--engine ballista://{host}:{port}: this crmcube was built without Ballista; \
             build it with `cargo build --release --features ballista` (docs/scale-out.md)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse_with_a_default_port_and_clear_errors() {
        assert_eq!("local".parse::<Engine>().unwrap(), Engine::Local);
        let b = |h: &str, p| Engine::Ballista {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            "ballista://10.0.0.5:50051".parse::<Engine>().unwrap(),
            b("10.0.0.5", 50051)
        );
        assert_eq!(
            "df://scheduler".parse::<Engine>().unwrap(),
            b("scheduler", 50050)
        );
        assert_eq!(
            "ballista://[::1]:7000".parse::<Engine>().unwrap(),
            b("[::1]", 7000)
        );
        assert_eq!(
            "ballista://h:1/".parse::<Engine>().unwrap().to_string(),
            "ballista://h:1"
        );
        for bad in [
            "spark://x",
            "ballista://",
            "ballista://h:port",
            "ballista://h/x",
        ] {
            let e = bad.parse::<Engine>().unwrap_err().to_string();
            assert!(
                e.contains(bad.trim_end_matches('/')) && e.contains("expected"),
                "{e}"
            );
        }
    }
}
