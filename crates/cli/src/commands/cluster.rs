//! `crmcube cluster` (cargo feature `ballista`): an Apache Ballista scheduler and executor
//! on this machine's loopback, the scale-out path on one box.

use super::{runtime, Context};
use anyhow::Result;

/// Flags of `cluster`.
#[derive(clap::Args)]
#[command(after_help = "Then, from another shell:\n  \
    crmcube sql --warehouse wh/ --engine ballista://localhost:PORT \"SELECT COUNT(*) FROM fact_sales\"\n\
    A real cluster runs Ballista's own scheduler and executor binaries on several machines \
    (docs/scale-out.md).")]
pub struct ClusterArgs {
    /// Task slots of the executor (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

/// Runs `cluster` until SIGINT or SIGTERM.
pub fn run(_ctx: &Context, a: ClusterArgs) -> Result<()> {
    let threads = a.threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |t| t as usize,
    );
    let rt = runtime()?;
    rt.block_on(async {
        let port = crmcube_cube::scale_out::local_cluster(threads).await?;
        // Always printed (not subject to --quiet): scripts read the port from it.
        eprintln!(
            "crmcube cluster: Ballista scheduler on ballista://localhost:{port} \
             (one executor, {threads} task slots)"
        );
        eprintln!("stop with Ctrl-C (or SIGTERM)");
        crmcube_serve::shutdown_signal().await;
        anyhow::Ok(())
    })
}
